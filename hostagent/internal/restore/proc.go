package restore

import (
	"fmt"
	"os"
	"syscall"
)

func ownerOf(st os.FileInfo) (uid, gid int, ok bool) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(sys.Uid), int(sys.Gid), true
}

// Owner returns the uid and gid owning path.
func Owner(path string) (uid, gid int, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	uid, gid, ok := ownerOf(st)
	if !ok {
		return 0, 0, fmt.Errorf("owner of %s: no stat data", path)
	}
	return uid, gid, nil
}
