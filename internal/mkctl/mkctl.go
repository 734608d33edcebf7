// Package mkctl is the messagekit operator's command-line tool: one
// command group per concern (catalog, …), each a table of subcommands.
// cmd/mkctl only calls [Run].
package mkctl

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Exit codes of [Run].
const (
	ExitOK      = 0 // done; for a check, nothing breaking
	ExitFailed  = 1 // a check found problems
	ExitUsage   = 2 // bad arguments, or input that cannot be read
	programName = "mkctl"
)

// command is one subcommand: "catalog check".
type command struct {
	summary string
	usage   string // arguments after the command's name
	run     func(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int
	flags   func(fs *flag.FlagSet)
}

// groups maps a group name to its subcommands. A new concern adds a group.
var groups = map[string]map[string]command{
	"catalog": catalogCommands,
}

// Run runs the command args names (without the program name) and returns
// the process's exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return ExitOK
		}
		return ExitUsage
	}
	group, ok := groups[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q\n", programName, args[0])
		usage(stderr)
		return ExitUsage
	}
	cmd, ok := group[args[1]]
	if !ok {
		fmt.Fprintf(stderr, "%s %s: unknown command %q\n", programName, args[0], args[1])
		usage(stderr)
		return ExitUsage
	}
	name := programName + " " + args[0] + " " + args[1]
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s %s\n\n%s\n", name, cmd.usage, cmd.summary)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[2:]); err != nil {
		if err == flag.ErrHelp {
			return ExitOK
		}
		return ExitUsage
	}
	return cmd.run(fs, fs.Args(), stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s <command> <subcommand> [flags] [arguments]\n\ncommands:\n", programName)
	var names []string
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		var subs []string
		for s := range groups[g] {
			subs = append(subs, s)
		}
		sort.Strings(subs)
		for _, s := range subs {
			c := groups[g][s]
			fmt.Fprintf(w, "  %-28s %s\n", strings.Join([]string{g, s, c.usage}, " "), c.summary)
		}
	}
}
