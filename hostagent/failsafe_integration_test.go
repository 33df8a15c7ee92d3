package main

// Integration tests of the fail-safe under faults: a garbled state record, a
// killed MySQL lock connection, a paused client, a full state dir, a state
// dir on a frozen filesystem, nested mounts, expedited RCU left on by a
// killed freeze, a thaw after the mount was lazily unmounted and replaced.

import (
	"bytes"
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
	"github.com/quiesce/quiesce/internal/fsfreeze"
	"github.com/quiesce/quiesce/test/fixture"
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

// TestStateDirOnFrozenFilesystemRefused: a state dir on a filesystem someone
// froze must be refused quickly. Any write there blocks in uninterruptible
// sleep (not even SIGKILL ends it), so a command that just wrote would hang —
// with the caller's (SSM's) stdout pipe open — until that filesystem thaws.
func TestStateDirOnFrozenFilesystemRefused(t *testing.T) {
	data := loopFS(t, "xfs")
	other := loopFS(t, "ext4")
	stateDir := filepath.Join(other.Mount, "st")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := fixtureFreeze(other.Mount); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Thaw() })

	for _, args := range [][]string{
		{"freeze", "--mysql-lock", "none", "--mount", data.Mount, "--timeout", "5s", "--state-dir", stateDir},
		{"status", "--state-dir", stateDir},
		{"thaw", "--run-id", "x1", "--state-dir", stateDir},
	} {
		cmd := exec.Command(agentBin, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			other.Thaw() // the only way to end it
			<-done
			t.Fatalf("%v hung on the frozen state dir until its filesystem was thawed", args[0])
		}
		elapsed := time.Since(start)
		if code := contract.ExitCode(cmd.ProcessState.ExitCode()); code != contract.ExitBusy {
			t.Fatalf("%v: exit %d, want 3\nstdout: %s\nstderr: %s", args[0], code, out.String(), errb.String())
		}
		if elapsed > 3*time.Second {
			t.Errorf("%v took %v to refuse", args[0], elapsed)
		}
		var er contract.ErrorReport
		decodeOne(t, out.String(), &er)
		line := strings.TrimSpace(errb.String())
		if strings.Contains(line, "\n") || !strings.Contains(line, stateDir) {
			t.Fatalf("%v: stderr must be one line naming %s: %q", args[0], stateDir, line)
		}
		requireCompletes(t, writer(t, data.Mount), 2*time.Second)
	}
}

// Two real loop XFS filesystems, the inner one's image file living on the
// outer one. Freezing the outer first would leave the inner's FIFREEZE (and
// every write to it) waiting on a frozen filesystem; hostagent must refuse
// the pair up front, naming both, and freeze nothing.
func TestNestedLoopMountsRefused(t *testing.T) {
	fixture.RequireLoopFS(t, "xfs")
	outer := loopFS(t, "xfs")
	// Registered after the outer's cleanup, so it runs first: inner unmounted
	// and detached before the outer goes.
	inner := loopFSAt(t, outer.Mount, "xfs", 300, "inner.img")
	e := newEnv(t)

	for _, args := range [][]string{
		{"check", "--mysql-lock", "none", "--mount", outer.Mount, "--mount", inner.Mount},
		{"check", "--mysql-lock", "none", "--mount", inner.Mount, "--mount", outer.Mount},
	} {
		r := e.run(args...)
		requireNestedRefusal(t, r, outer.Mount, inner.Mount)
		var cr contract.CheckReport
		decodeOne(t, r.stdout, &cr)
		if cr.OK || len(cr.Problems) != 1 {
			t.Fatalf("check report %+v, want exactly the one problem", cr)
		}
	}
	if t.Failed() {
		return // never try a freeze that check did not refuse
	}
	// A safety net of our own: should the freeze ever get through, thawing
	// the outer filesystem from outside releases the inner's FIFREEZE.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-stop:
		case <-time.After(10 * time.Second):
			outer.Thaw()
			inner.Thaw()
		}
	}()
	r := e.run("freeze", "--mysql-lock", "none", "--timeout", "5s", "--mount", outer.Mount, "--mount", inner.Mount)
	requireNestedRefusal(t, r, outer.Mount, inner.Mount)
	for _, fs := range []*fixture.LoopFS{outer, inner} {
		requireCompletes(t, writer(t, fs.Mount), 2*time.Second)
	}
	e.requireOnlyProcs(t)
	// Each alone is fine.
	for _, m := range []string{outer.Mount, inner.Mount} {
		if r := e.run("check", "--mysql-lock", "none", "--mount", m); r.code != 0 {
			t.Errorf("check %s alone: exit %d: %s", m, r.code, r.stderr)
		}
	}
}

func requireNestedRefusal(t *testing.T, r result, outer, inner string) {
	t.Helper()
	line := requireUsageLine(t, r)
	t.Logf("refused: %s", line)
	for _, want := range []string{fmt.Sprintf("%q", inner), fmt.Sprintf("%q", outer), "inner.img"} {
		if !strings.Contains(line, want) {
			t.Errorf("stderr %q does not name %s", line, want)
		}
	}
}

const rcuKnob = "/sys/kernel/rcu_expedited"

func readRCU(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(rcuKnob)
	if err != nil {
		t.Skipf("%s unreadable: %v", rcuKnob, err)
	}
	return strings.TrimSpace(string(b))
}

// TestExpediteRCURestoredWhenKilledMidFreeze: --expedite-rcu switches a
// machine-wide kernel knob on around FIFREEZE. When the holder (and the
// client) are SIGKILLed while it is on, the guardian must put it back, at the
// latest when it thaws at the deadline.
func TestExpediteRCURestoredWhenKilledMidFreeze(t *testing.T) {
	fixture.RequireLoopFS(t, "xfs")
	orig := readRCU(t)
	if err := os.WriteFile(rcuKnob, []byte("0\n"), 0); err != nil {
		t.Skipf("cannot write %s: %v", rcuKnob, err)
	}
	t.Cleanup(func() { os.WriteFile(rcuKnob, []byte(orig+"\n"), 0) })

	fs := loopFSAt(t, t.TempDir(), "xfs", 512, "rcu.img")
	e := newEnv(t)
	// Dirty page cache makes the syncfs inside the freeze step take long
	// enough to kill the processes while the knob is on.
	big := bytes.Repeat([]byte{0x5a}, 1<<20)
	f, err := os.Create(filepath.Join(fs.Mount, "dirty"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 380; i++ {
		if _, err := f.Write(big); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	client := exec.Command(agentBin, "freeze", "--mysql-lock", "none", "--expedite-rcu=true",
		"--mount", fs.Mount, "--timeout", "2s", "--run-id", "rcu-kill")
	client.Env = append(os.Environ(), state.EnvDir+"="+e.stateDir)
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	clientDone := make(chan struct{})
	go func() { client.Wait(); close(clientDone) }()
	t.Cleanup(func() { client.Process.Kill(); <-clientDone })

	d := &state.Dir{Path: e.stateDir}
	var run *state.Run
	for until := time.Now().Add(10 * time.Second); ; {
		if time.Now().After(until) {
			t.Fatalf("knob never switched on during the freeze (run %+v)", run)
		}
		if r, err := d.Read("rcu-kill"); err == nil {
			run = r
		}
		if run != nil && run.Holder.PID != 0 && readRCU(t) == "1" {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	syscall.Kill(client.Process.Pid, syscall.SIGKILL)
	syscall.Kill(run.Holder.PID, syscall.SIGKILL)
	<-clientDone
	waitDead(t, run.Holder.PID, 5*time.Second)
	after, err := d.Read("rcu-kill")
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != state.StatusStarting || !after.RCURestore {
		t.Skipf("the holder finished freezing before the kill (status %s); the window was missed", after.Status)
	}
	// Only the guardian is left: it must restore the knob (at the latest when
	// it thaws at the deadline).
	for until := run.Deadline.Add(2 * time.Second); readRCU(t) != "0"; {
		if time.Now().After(until) {
			t.Fatalf("%s still 1 after the guardian's deadline (%s): the machine-wide knob was left on", rcuKnob, run.Deadline.Format(time.RFC3339Nano))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if late := time.Since(run.Deadline); late > time.Second {
		t.Errorf("knob restored %v after the deadline", late)
	}
}

// TestThawAfterLazyUnmount: after `umount -l` of a held mount, the path is a
// plain directory of the parent filesystem and the frozen filesystem lives on,
// detached (and whatever had files open on it, mariadbd say, stays blocked).
// FITHAW on the path would hit the parent (EINVAL: "not frozen"); the thaw
// used to answer thawed:true, exit 0, with the filesystem still frozen. The
// holder and the guardian keep a descriptor on each mount from before the
// freeze and thaw through it; with neither left, the thaw from the state file
// must say it could not thaw, and never FITHAW a filesystem it did not freeze.
func TestThawAfterLazyUnmount(t *testing.T) {
	for _, tc := range []struct {
		name     string
		kill     []string // processes SIGKILLed after the unmount
		wantCode contract.ExitCode
		thawed   bool
	}{
		{"holder thaws", nil, contract.ExitOK, true},
		{"guardian thaws at the deadline", []string{"holder"}, contract.ExitLate, true},
		{"nobody left", []string{"guardian", "holder"}, contract.ExitFailed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := loopFS(t, "xfs")
			e := newEnv(t)
			rep := e.freeze(t, "--mount", fs.Mount, "--timeout", "1500ms", "--run-id", "lazy-umount")
			if out, err := exec.Command("umount", "-l", fs.Mount).CombinedOutput(); err != nil {
				t.Fatalf("umount -l: %v: %s", err, out)
			}
			// Get the detached filesystem back through its device; remember
			// whether it was still frozen; thaw it so the fixture can clean up.
			again := filepath.Join(filepath.Dir(fs.Mount), "again")
			remount := func() (wasFrozen bool) {
				os.Mkdir(again, 0o755)
				if out, err := exec.Command("mount", fs.Device, again).CombinedOutput(); err != nil {
					t.Errorf("remount %s: %v: %s", fs.Device, err, out)
					return false
				}
				wasFrozen, _ = fsfreeze.Thaw(again)
				exec.Command("umount", again).Run()
				exec.Command("mount", fs.Device, fs.Mount).Run() // for the fixture's own cleanup
				return wasFrozen
			}
			remounted := false
			t.Cleanup(func() {
				if !remounted {
					remount()
				}
			})
			for _, p := range tc.kill {
				pid := rep.HolderPID
				if p == "guardian" {
					pid = rep.GuardianPID
				}
				syscall.Kill(pid, syscall.SIGKILL)
				waitDead(t, pid, 2*time.Second)
			}
			if len(tc.kill) == 1 { // let the guardian act at the deadline
				time.Sleep(time.Until(rep.Deadline) + 300*time.Millisecond)
			}
			r := e.run("thaw", "--run-id", rep.RunID)
			var th contract.ThawReport
			decodeOne(t, r.stdout, &th)
			if r.code != tc.wantCode || len(th.Mounts) != 1 || th.Mounts[0].Thawed != tc.thawed {
				t.Fatalf("thaw: exit %d, report %+v; want exit %d, thawed=%v\nstderr: %s", r.code, th, tc.wantCode, tc.thawed, r.stderr)
			}
			if !tc.thawed && (!strings.Contains(th.Mounts[0].Error, "device changed") || !strings.Contains(r.stderr, fs.Mount)) {
				t.Fatalf("error must say why and name the mount: %q / %q", th.Mounts[0].Error, r.stderr)
			}
			remounted = true
			if stillFrozen := remount(); stillFrozen == tc.thawed {
				t.Fatalf("report says thawed=%v, but the detached filesystem was frozen=%v", tc.thawed, stillFrozen)
			}
		})
	}
}
