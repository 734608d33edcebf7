package service

import (
	"fmt"
	"io"
	"runtime/debug"
)

// Set with -ldflags "-X github.com/firstunicorn/messagekit-go/internal/service.version=v1.2.3
// -X ….revision=<commit>" where the build has no VCS information to stamp
// (a container build without .git); the build's own stamp wins over neither.
var (
	version  string
	revision string
)

// BuildInfo is what `<binary> version` prints.
type BuildInfo struct {
	Module    string // module path
	Version   string // module version: a tag, a pseudo-version or "(devel)"
	Revision  string // VCS commit, or "unknown"
	Time      string // commit time (RFC 3339), when stamped
	Modified  bool   // the working tree had uncommitted changes
	GoVersion string
}

// ReadBuildInfo returns the binary's build information: the -ldflags
// values when given, else what the Go toolchain stamped (module version,
// vcs.revision, vcs.time, vcs.modified).
func ReadBuildInfo() BuildInfo {
	bi := BuildInfo{Version: "(devel)", Revision: "unknown", GoVersion: "unknown"}
	if info, ok := debug.ReadBuildInfo(); ok {
		bi.Module = info.Main.Path
		if info.Main.Version != "" {
			bi.Version = info.Main.Version
		}
		bi.GoVersion = info.GoVersion
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				bi.Revision = s.Value
			case "vcs.time":
				bi.Time = s.Value
			case "vcs.modified":
				bi.Modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		bi.Version = version
	}
	if revision != "" {
		bi.Revision = revision
	}
	return bi
}

// writeVersion prints name's build information to w.
func writeVersion(w io.Writer, name string) error {
	bi := ReadBuildInfo()
	rev := bi.Revision
	if bi.Modified {
		rev += " (modified)"
	}
	if bi.Time != "" {
		rev += " " + bi.Time
	}
	_, err := fmt.Fprintf(w, "%s %s\n  module:   %s\n  revision: %s\n  go:       %s\n", name, bi.Version, bi.Module, rev, bi.GoVersion)
	return err
}
