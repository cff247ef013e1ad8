package ferrite

import (
	"runtime"
	"runtime/debug"
)

// Version is the release version, set at build time with
// -ldflags "-X github.com/ferrite-edge/ferrite.Version=v1.2.3".
var Version = "dev"

// BuildInfo describes the running binary.
type BuildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"` // VCS commit, when built from a checkout
	Modified  bool   `json:"modified,omitempty"` // the checkout had local changes
	GoVersion string `json:"go_version"`
}

// Build returns the version, VCS revision and Go version of the binary.
func Build() BuildInfo {
	b := BuildInfo{Version: Version, GoVersion: runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	return b
}

// String is "ferrite <version> (<revision>, <go version>)".
func (b BuildInfo) String() string {
	s := "ferrite " + b.Version
	rev := b.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if b.Modified {
		rev += "+dirty"
	}
	if rev != "" {
		s += " (" + rev + ", " + b.GoVersion + ")"
	} else {
		s += " (" + b.GoVersion + ")"
	}
	return s
}
