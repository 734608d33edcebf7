package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

// Source is where a catalog is read from: a directory ([Dir]) or a git
// branch ([Git]).
type Source interface {
	// Read returns the catalog's files as they are now, and the revision
	// they are at ("" when the source has none).
	Read(ctx context.Context) (fs.FS, string, error)
	// String names the source for logs, without credentials.
	String() string
}

// Dir is a catalog kept in a directory, e.g. by a git-sync sidecar
// (EVENT_CATALOG_PATH).
type Dir string

// Read returns the directory's files.
func (d Dir) Read(context.Context) (fs.FS, string, error) {
	st, err := os.Stat(string(d))
	if err != nil {
		return nil, "", err
	}
	if !st.IsDir() {
		return nil, "", fmt.Errorf("%s is not a directory", string(d))
	}
	return os.DirFS(string(d)), "", nil
}

// String returns the directory's path.
func (d Dir) String() string { return string(d) }

// Git is a catalog kept on a branch of a git repository
// (EVENT_CATALOG_REPO_URL, EVENT_CATALOG_BRANCH). Every Read fetches the
// branch's head in process, without a git binary: a URL with a scheme
// (https://, ssh://, file://) is cloned into memory; a plain path names a
// repository on this machine, bare or not, which is read directly.
type Git struct {
	// URL is the repository's URL or local path. Credentials may be given
	// in an https URL's user info.
	URL string
	// Branch is the branch to read; empty means "main".
	Branch string
}

// Read returns the files of the branch's head commit and its hash.
func (g Git) Read(ctx context.Context) (fs.FS, string, error) {
	branch := g.Branch
	if branch == "" {
		branch = "main"
	}
	ref := plumbing.NewBranchReferenceName(branch)
	var repo *git.Repository
	var err error
	if strings.Contains(g.URL, "://") {
		repo, err = git.CloneContext(ctx, memory.NewStorage(), nil, &git.CloneOptions{
			URL: g.URL, ReferenceName: ref, SingleBranch: true, Depth: 1, NoCheckout: true, Tags: git.NoTags,
		})
	} else {
		repo, err = git.PlainOpen(g.URL)
	}
	if err != nil {
		return nil, "", fmt.Errorf("git %s: %w", g.String(), err)
	}
	return gitTree(repo, string(ref))
}

// String returns the URL without its password, and the branch.
func (g Git) String() string {
	u := g.URL
	if at := strings.LastIndex(u, "@"); at >= 0 {
		if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
			u = u[:scheme+3] + "***" + u[at:]
		}
	}
	b := g.Branch
	if b == "" {
		b = "main"
	}
	return u + "#" + b
}

// GitRevision reads the catalog at revision rev (a branch, tag, hash or
// expression git rev-parse understands, e.g. "HEAD~1") of the repository
// at dir, or a directory above it.
func GitRevision(dir, rev string) (fs.FS, string, error) {
	repo, err := git.PlainOpen(dir) // a bare repository, or a work tree's top
	if err != nil {
		repo, err = git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	}
	if err != nil {
		return nil, "", fmt.Errorf("git %s: %w", dir, err)
	}
	return gitTree(repo, rev)
}

func gitTree(repo *git.Repository, rev string) (fs.FS, string, error) {
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, "", fmt.Errorf("git revision %s: %w", rev, err)
	}
	commit, err := repo.CommitObject(*h)
	if err != nil {
		return nil, "", fmt.Errorf("git commit %s: %w", h, err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, "", fmt.Errorf("git tree of %s: %w", h, err)
	}
	return treeFS{tree}, h.String(), nil
}

// treeFS serves a git tree's files to fs.ReadFile.
type treeFS struct{ t *object.Tree }

func (t treeFS) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: errors.ErrUnsupported}
}

func (t treeFS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrInvalid}
	}
	f, err := t.t.File(name)
	if err != nil {
		if errors.Is(err, object.ErrFileNotFound) || errors.Is(err, object.ErrDirectoryNotFound) || errors.Is(err, object.ErrEntryNotFound) {
			return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
		}
		return nil, err
	}
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// LoadFrom reads src once and loads it.
func LoadFrom(ctx context.Context, src Source, opts Options) (*Catalog, error) {
	fsys, rev, err := src.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("event catalog %s: %w", src, err)
	}
	c, err := Load(fsys, opts)
	if err != nil {
		return nil, fmt.Errorf("event catalog %s: %w", src, err)
	}
	c.Revision = rev
	return c, nil
}
