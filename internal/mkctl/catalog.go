package mkctl

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/firstunicorn/messagekit-go/pkg/contracts/catalog"
)

var catalogCommands = map[string]command{
	"check": {
		summary: "fail, listing each, when NEW has a change that breaks consumers of OLD",
		usage:   "[-repo DIR] OLD NEW",
		flags: func(fs *flag.FlagSet) {
			fs.String("repo", ".", "git repository in which OLD or NEW name a revision when they are not directories")
		},
		run: catalogCheck,
	},
	"doc": {
		summary: "write the catalog as a Markdown document",
		usage:   "[-repo DIR] [-o FILE] [-check] CATALOG",
		flags: func(fs *flag.FlagSet) {
			fs.String("repo", ".", "git repository in which CATALOG names a revision when it is not a directory")
			fs.String("o", "", "write to FILE instead of standard output")
			fs.Bool("check", false, "with -o: write nothing, fail when FILE is not up to date")
		},
		run: catalogDoc,
	},
}

// loadCatalog loads arg: a catalog directory, or else a revision of the
// git repository repo (a branch, tag, hash, HEAD~1, origin/main, …).
func loadCatalog(repo, arg string) (*catalog.Catalog, error) {
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		return catalog.LoadFrom(context.Background(), catalog.Dir(arg), catalog.Options{})
	}
	fsys, rev, err := catalog.GitRevision(repo, arg)
	if err != nil {
		return nil, fmt.Errorf("%s is neither a directory nor a revision of %s: %w", arg, repo, err)
	}
	c, err := catalog.Load(fsys, catalog.Options{})
	if err != nil {
		return nil, fmt.Errorf("catalog at %s (%s): %w", arg, rev[:12], err)
	}
	c.Revision = rev
	return c, nil
}

func catalogCheck(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fs.Usage()
		return ExitUsage
	}
	repo := fs.Lookup("repo").Value.String()
	old, err := loadCatalog(repo, args[0])
	if err != nil {
		fmt.Fprintf(stderr, "mkctl catalog check: old: %v\n", err)
		return ExitUsage
	}
	new, err := loadCatalog(repo, args[1])
	if err != nil {
		fmt.Fprintf(stderr, "mkctl catalog check: new: %v\n", err)
		return ExitUsage
	}
	changes := catalog.Compare(old, new)
	breaking := catalog.Breaking(changes)
	for _, c := range changes {
		mark := "ok      "
		if c.Breaking() {
			mark = "BREAKING"
		}
		fmt.Fprintf(stdout, "%s %s\n", mark, c)
	}
	if len(breaking) > 0 {
		fmt.Fprintf(stdout, "%d breaking change(s): consumers of %s would break; publish the change as a new dataVersion instead\n", len(breaking), args[0])
		return ExitFailed
	}
	fmt.Fprintf(stdout, "compatible: %d change(s), none breaking\n", len(changes))
	return ExitOK
}

func catalogDoc(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fs.Usage()
		return ExitUsage
	}
	c, err := loadCatalog(fs.Lookup("repo").Value.String(), args[0])
	if err != nil {
		fmt.Fprintf(stderr, "mkctl catalog doc: %v\n", err)
		return ExitUsage
	}
	var doc bytes.Buffer
	if err := catalog.WriteMarkdown(&doc, c); err != nil {
		fmt.Fprintf(stderr, "mkctl catalog doc: %v\n", err)
		return ExitFailed
	}
	out := fs.Lookup("o").Value.String()
	switch {
	case out == "":
		_, err = stdout.Write(doc.Bytes())
	case fs.Lookup("check").Value.String() == "true":
		cur, rerr := os.ReadFile(out)
		if rerr != nil || !bytes.Equal(cur, doc.Bytes()) {
			fmt.Fprintf(stderr, "mkctl catalog doc: %s is not up to date; run mkctl catalog doc -o %s %s\n", out, out, args[0])
			return ExitFailed
		}
	default:
		err = os.WriteFile(out, doc.Bytes(), 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mkctl catalog doc: %v\n", err)
		return ExitFailed
	}
	return ExitOK
}
