package main

// Integration tests of the fail-safe under faults: a garbled state record, a
// killed MySQL lock connection, a paused client, a full state dir.

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/state"
)

// garble truncates a run's state record and, with copies, its redundant copy.
func (e *env) garble(t *testing.T, runID string, copies bool) {
	t.Helper()
	files := []string{filepath.Join(e.stateDir, runID+".json")}
	if copies {
		more, _ := filepath.Glob(filepath.Join(e.stateDir, runID+".json.*"))
		files = append(files, more...)
	}
	for _, f := range files {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// An unreadable state record must not disable any fail-safe layer: the
// guardian thaws at the deadline from what it read at start, thaw reaches a
// live holder through its socket, and recovery works from the redundant copy.
func TestUnreadableStateStillThaws(t *testing.T) {
	fs := loopFS(t, "xfs")
	t.Run("guardian at the deadline", func(t *testing.T) {
		e := newEnv(t)
		rep := e.freeze(t, "--mount", fs.Mount, "--timeout", "2s", "--run-id", "garbled-1")
		e.garble(t, rep.RunID, true)
		syscall.Kill(rep.HolderPID, syscall.SIGKILL)
		waitDead(t, rep.HolderPID, time.Second)
		w := writer(t, fs.Mount)
		requireCompletes(t, w, time.Until(rep.Deadline)+3*time.Second)
		th := e.thaw(t, rep.RunID, contract.ExitLate)
		if th.ThawedBy != contract.ThawedByDeadline {
			t.Fatalf("thaw report %+v", th)
		}
	})
	t.Run("thaw with the holder alive", func(t *testing.T) {
		e := newEnv(t)
		rep := e.freeze(t, "--mount", fs.Mount, "--timeout", "20s", "--run-id", "garbled-2")
		e.garble(t, rep.RunID, true)
		w := writer(t, fs.Mount)
		requireBlocked(t, w, 100*time.Millisecond)
		th := e.thaw(t, rep.RunID, 0)
		if th.ThawedBy != contract.ThawedByCommand || !th.Mounts[0].Thawed {
			t.Fatalf("thaw report %+v", th)
		}
		requireCompletes(t, w, 2*time.Second)
		if st := e.status(t); len(st.Runs) != 1 || st.Runs[0].State != state.StatusThawed {
			t.Fatalf("status after the thaw: %+v", st)
		}
	})
	t.Run("recovery with nobody left", func(t *testing.T) {
		e := newEnv(t)
		rep := e.freeze(t, "--mount", fs.Mount, "--timeout", "60s", "--run-id", "garbled-3")
		e.garble(t, rep.RunID, false)
		syscall.Kill(rep.GuardianPID, syscall.SIGKILL)
		syscall.Kill(rep.HolderPID, syscall.SIGKILL)
		waitDead(t, rep.HolderPID, time.Second)
		waitDead(t, rep.GuardianPID, time.Second)
		w := writer(t, fs.Mount)
		requireBlocked(t, w, 100*time.Millisecond)
		st := e.status(t)
		if len(st.Runs) != 1 || st.Runs[0].State != state.StatusThawed || st.Runs[0].ThawedBy != contract.ThawedByRecovery {
			t.Fatalf("status after recovery: %+v", st)
		}
		requireCompletes(t, w, 2*time.Second)
	})
}
