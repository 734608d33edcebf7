// Command mkctl is the messagekit operator's command-line tool.
//
//	mkctl catalog check [-repo DIR] OLD NEW   breaking changes between two catalogs
//	mkctl catalog doc [-repo DIR] [-o FILE] CATALOG   the catalog as Markdown
//
// OLD, NEW and CATALOG are catalog directories or revisions of the git
// repository DIR (default: the current directory). Run mkctl without
// arguments for the list of commands.
package main

import (
	"os"

	"github.com/firstunicorn/messagekit-go/internal/mkctl"
)

func main() {
	os.Exit(mkctl.Run(os.Args[1:], os.Stdout, os.Stderr))
}
