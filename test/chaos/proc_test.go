package chaos

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/procstat"
)

// procRef is a process as the state dir records it: pid plus start time
// (clock ticks since boot), so a reused pid is never taken for it.
type procRef struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// record is the part of a state dir record (one <run-id>.json) the checks
// read. It is parsed independently of hostagent's own types on purpose:
// the suite looks at the state dir from outside, like an operator would.
type record struct {
	RunID         string                  `json:"run_id"`
	Status        string                  `json:"status"`
	Mounts        []struct{ Path string } `json:"mounts"`
	Deadline      time.Time               `json:"deadline"`
	DeadlineFinal bool                    `json:"deadline_final"`
	Freezing      bool                    `json:"freezing"`
	Client        procRef                 `json:"client"`
	Holder        procRef                 `json:"holder"`
	Guardian      procRef                 `json:"guardian"`
	ConnectionID  uint64                  `json:"connection_id"`

	Freeze *contract.FreezeReport `json:"freeze"`
	Thaw   *contract.ThawReport   `json:"thaw"`
	Error  string                 `json:"error"`

	file string // where it was read from
}

func (r *record) active() bool { return r.Status == "starting" || r.Status == "held" }

// readRecords loads every record of a state dir: active ones at the top,
// finished ones under done/. Unparseable files come back as errors.
func readRecords(dir string) (top, done []*record, errs []error) {
	load := func(d string) []*record {
		entries, err := os.ReadDir(d)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			return nil
		}
		var out []*record
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			p := filepath.Join(d, e.Name())
			data, err := os.ReadFile(p)
			if err != nil {
				continue // moved to done/ meanwhile
			}
			r := &record{file: p}
			if err := json.Unmarshal(data, r); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p, err))
				continue
			}
			out = append(out, r)
		}
		return out
	}
	return load(dir), load(filepath.Join(dir, "done")), errs
}

// refOf pins a pid that runs the binary under test (nil ok=false otherwise).
func refOf(pid int) (procRef, bool) {
	if pid <= 0 || !isAgent(pid) {
		return procRef{}, false
	}
	start, _, err := procstat.Read(pid)
	if err != nil {
		return procRef{}, false
	}
	return procRef{PID: pid, Start: start}, true
}

// isAgent reports whether pid executes the hostagent binary this suite built:
// the only processes besides its own children and its mariadbd it ever signals.
func isAgent(pid int) bool {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return false
	}
	return strings.TrimSuffix(exe, " (deleted)") == agentBin
}

// alive: same pid, same start time, not a zombie.
func (p procRef) alive() bool {
	if p.PID <= 0 {
		return false
	}
	start, st, err := procstat.Read(p.PID)
	return err == nil && start == p.Start && st != 'Z' && st != 'X'
}

// state describes the process for messages ("R", "T (stopped)", "D (disk sleep)").
func (p procRef) state() string {
	_, st, err := procstat.Read(p.PID)
	if err != nil {
		return "gone"
	}
	names := map[byte]string{'T': "stopped", 'D': "uninterruptible sleep", 'S': "sleeping", 'R': "running", 't': "traced"}
	return string(st) + " (" + names[st] + ")"
}

// signal sends sig only to the recorded process (start time checked first).
func (p procRef) signal(sig syscall.Signal) error {
	if !p.alive() {
		return fmt.Errorf("pid %d: not running", p.PID)
	}
	return syscall.Kill(p.PID, sig)
}

// waitDead waits until every process is gone, at most until deadline; it
// returns the ones still alive.
func waitDead(procs []procRef, deadline time.Time) []procRef {
	for {
		var live []procRef
		for _, p := range procs {
			if p.alive() {
				live = append(live, p)
			}
		}
		if len(live) == 0 || time.Now().After(deadline) {
			return live
		}
		time.Sleep(10 * time.Millisecond)
	}
}
