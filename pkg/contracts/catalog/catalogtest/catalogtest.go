// Package catalogtest helps tests serve an event catalog from a bare git
// repository, written in process without a git binary.
package catalogtest

import (
	"io/fs"
	"os"
	"path"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/memfs"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Repo is a bare repository on disk whose commits are made through an
// in-memory work tree.
type Repo struct {
	repo *git.Repository
	wt   *git.Worktree
}

// NewBareRepo creates a bare repository in dir whose HEAD is branch.
func NewBareRepo(t testing.TB, dir, branch string) *Repo {
	t.Helper()
	st := filesystem.NewStorage(osfs.New(dir), cache.NewObjectLRUDefault())
	r, err := git.InitWithOptions(st, memfs.New(), git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(branch)})
	if err != nil {
		t.Fatalf("init %s: %v", dir, err)
	}
	wt, err := r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	return &Repo{repo: r, wt: wt}
}

// Commit replaces the branch's files with files (path → contents) and
// commits them: the same as a push of that commit.
func (r *Repo) Commit(t testing.TB, files map[string]string, msg string) string {
	t.Helper()
	fsys := r.wt.Filesystem
	old, _ := listFiles(fsys, ".")
	for _, p := range old {
		if _, ok := files[p]; !ok {
			if _, err := r.wt.Remove(p); err != nil {
				t.Fatalf("remove %s: %v", p, err)
			}
		}
	}
	for p, data := range files {
		if err := fsys.MkdirAll(path.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := fsys.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if _, err := r.wt.Add(p); err != nil {
			t.Fatalf("add %s: %v", p, err)
		}
	}
	h, err := r.wt.Commit(msg, &git.CommitOptions{
		Author:            &object.Signature{Name: "catalog", Email: "catalog@example.com", When: time.Now()},
		AllowEmptyCommits: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func listFiles(fsys interface {
	ReadDir(string) ([]os.FileInfo, error)
}, dir string) ([]string, error) {
	infos, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, fi := range infos {
		if fi.Name() == ".git" {
			continue
		}
		p := path.Join(dir, fi.Name())
		if fi.IsDir() {
			sub, err := listFiles(fsys, p)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// Files returns every file under dir, by slash-separated relative path.
func Files(t testing.TB, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := fs.WalkDir(os.DirFS(dir), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(os.DirFS(dir), p)
		files[p] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
