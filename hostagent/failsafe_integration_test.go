package main

// Integration tests of the fail-safe under faults: a garbled state record, a
// killed MySQL lock connection, a paused client, a full state dir.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// A MySQL lock killed during the hold is reported as lost, in status while
// the hold lasts and in the ThawReport; an intact one is not.
func TestMariaDBLockLossReported(t *testing.T) {
	fs, maria, db := mariadbOnLoop(t)
	m := maria.Socket
	e := newEnv(t)
	for _, kill := range []bool{true, false} {
		t.Run(fmt.Sprint("killed=", kill), func(t *testing.T) {
			id := fmt.Sprintf("lost-%v", kill)
			rep := e.freeze(t, "--mount", fs.Mount, "--mysql-socket", m, "--mysql-lock", "ftwrl", "--timeout", "20s", "--run-id", id)
			if rep.Lock.ConnectionID == 0 {
				t.Fatalf("no connection id in %+v", rep.Lock)
			}
			if kill {
				if _, err := db.Exec(fmt.Sprintf("KILL CONNECTION %d", rep.Lock.ConnectionID)); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(500 * time.Millisecond) // the watch pings every 100 ms
			st := e.status(t)
			if len(st.Runs) == 0 || (st.Runs[len(st.Runs)-1].LockLost != nil) != kill {
				t.Fatalf("status during the hold (killed=%v): %+v", kill, st)
			}
			th := e.thaw(t, rep.RunID, 0)
			if (th.LockLost != nil) != kill || (kill && (th.LockLost.Reason == "" || th.LockLost.AfterMS <= 0)) {
				t.Fatalf("thaw report (killed=%v): %+v lock_lost %+v", kill, th, th.LockLost)
			}
		})
	}
}

// A state dir that runs out of inodes: the freeze fails with "state dir
// full" (exit 1) and leaves no record that makes the next freeze busy.
func TestStateDirFullLeavesNoPhantomRun(t *testing.T) {
	fs := loopFS(t, "ext4")
	for _, inodes := range []int{3, 4, 5} {
		t.Run(fmt.Sprint("nr_inodes=", inodes), func(t *testing.T) {
			e := newEnv(t)
			if err := os.MkdirAll(e.stateDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("nr_inodes=%d,size=1m,mode=0700", inodes),
				"tmpfs", e.stateDir).CombinedOutput(); err != nil {
				t.Skipf("mount tmpfs: %v: %s", err, out)
			}
			t.Cleanup(func() {
				if out, err := exec.Command("umount", e.stateDir).CombinedOutput(); err != nil {
					t.Errorf("umount %s: %v: %s", e.stateDir, err, out)
				}
			})
			for i := 0; i < 2; i++ {
				r := e.run("freeze", "--mysql-lock", "none", "--mount", fs.Mount, "--timeout", "5s", "--run-id", fmt.Sprintf("full-%d", i))
				if r.code != contract.ExitFailed || !strings.Contains(r.stderr, "state dir") || !strings.Contains(r.stderr, "full") {
					t.Fatalf("freeze %d with the state dir full: exit %d, want 1 saying \"state dir full\"\nstdout: %s\nstderr: %s",
						i, r.code, r.stdout, r.stderr)
				}
				t.Logf("freeze %d: %s", i, strings.TrimSpace(r.stderr))
				requireCompletes(t, writer(t, fs.Mount), 2*time.Second)
			}
			e.requireOnlyProcs(t)
		})
	}
}

// FreezeReport and check name the fail-safe layers really armed here: the
// guardian and the next invocation always, the systemd timer only where
// systemd runs (and then the report names its unit).
func TestFailsafeLayersReported(t *testing.T) {
	fs := loopFS(t, "xfs")
	e := newEnv(t)
	rep := e.freeze(t, "--mount", fs.Mount, "--timeout", "20s", "--run-id", "layers")
	defer e.thaw(t, rep.RunID, 0)
	want := []string{"guardian", "next-invocation"}
	if rep.TimerUnit != "" {
		want = []string{"guardian", "systemd-timer", "next-invocation"}
	}
	if fmt.Sprint(rep.FailsafeLayers) != fmt.Sprint(want) {
		t.Fatalf("failsafe_layers %v, want %v (timer unit %q)", rep.FailsafeLayers, want, rep.TimerUnit)
	}
	other := loopFS(t, "ext4")
	r := e.run("check", "--mount", other.Mount, "--mysql-lock", "none")
	var cr contract.CheckReport
	decodeOne(t, r.stdout, &cr)
	if r.code != 0 || fmt.Sprint(cr.FailsafeLayers) != fmt.Sprint(want) {
		t.Fatalf("check: exit %d, failsafe_layers %v, want %v", r.code, cr.FailsafeLayers, want)
	}
}
