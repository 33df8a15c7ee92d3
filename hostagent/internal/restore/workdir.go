package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// NewWorkDir creates a private (0700) directory under parent for one run's
// mounts, socket and logs. Its name starts with WorkDirPrefix.
func NewWorkDir(parent string) (string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	dir, err := os.MkdirTemp(parent, WorkDirPrefix)
	if err != nil {
		return "", fmt.Errorf("work dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("work dir: %w", err)
	}
	return dir, nil
}

// RemoveWorkDir removes a work dir, but only when nothing is mounted at or
// below it any more: removing recursively through a mounted volume would
// delete the restored files.
func RemoveWorkDir(dir string) error {
	left, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("not removing %s: still mounted: %s", dir, strings.Join(left, ", "))
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove work dir: %w", err)
	}
	return nil
}

// ChownPath gives dir and its parents up to (and including) top to uid:gid,
// keeping their modes: a server run as a non-root user must traverse them.
func ChownPath(top, dir string, uid, gid int) error {
	top, dir = filepath.Clean(top), filepath.Clean(dir)
	if dir != top && !strings.HasPrefix(dir, top+"/") {
		return fmt.Errorf("chown: %s is not under %s", dir, top)
	}
	for p := dir; ; p = filepath.Dir(p) {
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
		if p == top {
			return nil
		}
	}
}

// ErrNotTraversable: a server run as uid could not reach its files.
var ErrNotTraversable = errors.New("not traversable")

// CheckTraversable reports the first directory from / down to dir that
// uid:gid cannot search (x permission), so a server dropped to that user does
// not fail later with a bare "Permission denied". Root passes everywhere.
func CheckTraversable(dir string, uid, gid int) error {
	if uid == 0 {
		return nil
	}
	dir = filepath.Clean(dir)
	for p := dir; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		ou, og, _ := ownerOf(st)
		perm := st.Mode().Perm()
		ok := perm&0o001 != 0 || (ou == uid && perm&0o100 != 0) || (og == gid && perm&0o010 != 0)
		if !ok {
			return fmt.Errorf("%s (mode %o, owner %d:%d) cannot be searched by uid %d, which owns the datadir; choose another --work-dir: %w",
				p, perm, ou, og, uid, ErrNotTraversable)
		}
		if p == "/" {
			return nil
		}
	}
}
