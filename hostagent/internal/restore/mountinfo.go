package restore

import (
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/internal/mountinfo"
)

// readMounts is a variable so tests can hand in a mount table of their own.
var readMounts = mountinfo.Read

// mountedAt returns the mount points of the block device at path.
func mountedAt(path string) ([]string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	real, _ := filepath.EvalSymlinks(path)
	var out []string
	for _, m := range mounts {
		if m.Dev == uint64(st.Rdev) || m.Source == path || (real != "" && m.Source == real) {
			out = append(out, m.MountPoint)
		}
	}
	return out, nil
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	var out []string
	for i := len(mounts) - 1; i >= 0; i-- { // later mounts stack on earlier ones
		p := mounts[i].MountPoint
		if p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	return out, nil
}
