package restore

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Proc names a process across pid reuse: its pid and its start time.
type Proc struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"` // /proc/<pid>/stat starttime, clock ticks since boot
}

// ProcOf reads pid's start time.
func ProcOf(pid int) (Proc, error) {
	start, _, err := procStat(pid)
	if err != nil {
		return Proc{}, err
	}
	return Proc{PID: pid, Start: start}, nil
}

// Self is the calling process.
func Self() Proc {
	p, _ := ProcOf(os.Getpid())
	return p
}

// Alive reports whether the process still runs: same pid, same start time
// (not a reused pid), not a zombie.
func (p Proc) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	start, st, err := procStat(p.PID)
	return err == nil && start == p.Start && st != 'Z' && st != 'X'
}

func procStat(pid int) (uint64, byte, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// comm may hold spaces and parentheses: the fields start after the last ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 { // f[0] is field 3 (state); starttime is field 22
		return 0, 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, err
	}
	return start, f[0][0], nil
}

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
