// Package procstat reads a process's start time and state from
// /proc/<pid>/stat (proc(5)): a pid and its start time name a process across
// pid reuse. hostagent's state records use it; the test tree checks the
// processes it signals with it.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Read returns pid's start time (field 22, clock ticks since boot) and its
// state letter (field 3: R, S, D, T, Z, X, …).
func Read(pid int) (start uint64, state byte, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// comm may contain spaces and parentheses: fields start after the last ')'.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); starttime is field 22 → f[19].
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, err
	}
	return start, f[0][0], nil
}
