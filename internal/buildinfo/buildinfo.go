// Package buildinfo reports the version and commit the binary was built from.
//
// The Makefile sets Version and Commit with -ldflags; a plain `go build`
// falls back to the module version and the VCS data embedded by the Go
// toolchain, if any.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time: -X github.com/gearbridge/gearbridge/internal/buildinfo.Version=...
var (
	Version = ""
	Commit  = ""
)

// Info describes one build.
type Info struct {
	Version   string
	Commit    string
	GoVersion string
}

// Get returns the build information, filling gaps from runtime/debug.
func Get() Info {
	info := Info{Version: Version, Commit: Commit, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && info.Commit == "" {
				info.Commit = s.Value
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}

// String formats the info for `gearbridge version`.
func (i Info) String() string {
	return fmt.Sprintf("gearbridge %s (commit %s, %s)", i.Version, i.Commit, i.GoVersion)
}
