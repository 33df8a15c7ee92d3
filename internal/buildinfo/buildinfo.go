// Package buildinfo carries the version and commit stamped in by the Makefile.
package buildinfo

import "runtime/debug"

// Set with -ldflags -X by the Makefile.
var (
	Version = "dev"
	Commit  = "none"
)

// String is "VERSION (COMMIT)", falling back to the VCS stamp Go embeds.
func String() string {
	v, c := Version, Commit
	if c == "none" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					c = s.Value[:12]
				}
			}
		}
	}
	return v + " (" + c + ")"
}
