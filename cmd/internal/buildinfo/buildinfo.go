// Package buildinfo is what ductbot knows about its own build: the module
// version and VCS revision Go embeds (debug.ReadBuildInfo), and the Go
// version.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version overrides the module version when set; the commands set it from
// their main.version, which -ldflags "-X main.version=v1.2.3" sets.
var Version = ""

// Get returns the module version ("(devel)" for a build from a work tree,
// unless Version is set), the VCS revision ("unknown" without VCS
// information; "-modified" appended for a dirty tree) and the Go version.
func Get() (version, revision, goversion string) {
	version, revision, goversion = Version, "unknown", runtime.Version()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if version == "" {
			version = "unknown"
		}
		return
	}
	if version == "" {
		version = bi.Main.Version
	}
	if version == "" {
		version = "unknown"
	}
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && revision != "unknown" {
		revision += "-modified"
	}
	return
}

// Line is the one line `NAME version` prints.
func Line(name string) string {
	v, r, g := Get()
	return fmt.Sprintf("%s %s (revision %s, %s)", name, v, r, g)
}
