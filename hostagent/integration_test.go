package main

// Integration tests: the real hostagent binary (built once in TestMain) run as
// a subprocess, as SSM runs it, against loop filesystems these tests create.
// Every test uses its own short state dir and kills the processes it started.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/state"
	"github.com/quiesce/quiesce/internal/fsfreeze"
	"github.com/quiesce/quiesce/test/fixture"
)

var agentBin string // built by TestMain; "" when the build failed

func TestMain(m *testing.M) {
	os.Exit(fixture.RunWithHostagent(m, func(bin string) { agentBin = bin }))
}

// env is one test's private state dir; cleanup kills every holder/guardian it recorded.
type env struct {
	t        testing.TB
	stateDir string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	// Short: the holder's unix socket lives there (sun_path limit).
	dir, err := os.MkdirTemp("", "qs")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, stateDir: filepath.Join(dir, "s")}
	t.Cleanup(func() {
		e.killAll()
		if t.Failed() {
			states, _ := filepath.Glob(filepath.Join(e.stateDir, "*.json"))
			done, _ := filepath.Glob(filepath.Join(e.stateDir, "done", "*.json"))
			for _, f := range append(states, done...) {
				b, _ := os.ReadFile(f)
				t.Logf("%s:\n%s", f, b)
			}
			logs, _ := filepath.Glob(filepath.Join(e.stateDir, "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", l, b)
			}
		}
		os.RemoveAll(dir)
	})
	return e
}

// killAll ends every hold of this env, even after a failed test: kill the
// recorded holder and guardian, then thaw the mounts they held (only this
// test's loop mounts are ever recorded here), so later cleanups (stopping
// mariadbd, unmounting) never wait on a frozen filesystem.
func (e *env) killAll() {
	d := &state.Dir{Path: e.stateDir}
	runs, _ := d.List()
	for _, r := range runs {
		for _, p := range []state.Proc{r.Holder, r.Guardian} {
			if p.Alive() {
				syscall.Kill(p.PID, syscall.SIGKILL)
			}
		}
		for _, m := range r.Mounts {
			fsfreeze.Thaw(m.Path)
		}
	}
}

type result struct {
	code           contract.ExitCode
	stdout, stderr string
	elapsed        time.Duration
}

// run executes hostagent with the env's state dir: see runAgent.
func (e *env) run(args ...string) result {
	e.t.Helper()
	return runAgent(e.t, 30*time.Second, append(os.Environ(), state.EnvDir+"="+e.stateDir), args...)
}

// runAgent executes hostagent with stdout/stderr on pipes (as SSM does): if the
// holder inherited them, this would not return until the hold ends. A nil
// environ inherits the test's environment; the run is killed after timeout.
func runAgent(t testing.TB, timeout time.Duration, environ []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, args...)
	cmd.Env = environ
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = contract.ExitCode(ee.ExitCode())
	} else if err != nil {
		t.Fatalf("hostagent %v: %v", args, err)
	}
	return r
}

// requireUsageLine requires a usage error (exit 2) told in one stderr line,
// and returns that line.
func requireUsageLine(t *testing.T, r result) string {
	t.Helper()
	if r.code != contract.ExitUsage {
		t.Fatalf("exit %d, want 2\nstdout: %.300s\nstderr: %.300s", r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 1 {
		t.Fatalf("stderr must be one line, got %.500q", r.stderr)
	}
	return lines[0]
}

func (e *env) freeze(t *testing.T, args ...string) contract.FreezeReport {
	t.Helper()
	// No MySQL unless the test names it (a later --mysql-lock wins), so a server
	// that happens to run on the test machine is never locked.
	r := e.run(append([]string{"freeze", "--mysql-lock", "none"}, args...)...)
	if r.code != 0 {
		t.Fatalf("freeze %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	if r.elapsed > 5*time.Second {
		t.Fatalf("freeze took %v: it must return as soon as everything is held", r.elapsed)
	}
	var rep contract.FreezeReport
	decodeOne(t, r.stdout, &rep)
	return rep
}

func (e *env) thaw(t *testing.T, runID string, wantCode contract.ExitCode) contract.ThawReport {
	t.Helper()
	r := e.run("thaw", "--run-id", runID)
	if r.code != wantCode {
		t.Fatalf("thaw %s: exit %d, want %d\nstdout: %s\nstderr: %s", runID, r.code, wantCode, r.stdout, r.stderr)
	}
	var rep contract.ThawReport
	decodeOne(t, r.stdout, &rep)
	return rep
}

func (e *env) status(t *testing.T) contract.StatusReport {
	t.Helper()
	r := e.run("status")
	if r.code != 0 {
		t.Fatalf("status: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	var rep contract.StatusReport
	decodeOne(t, r.stdout, &rep)
	return rep
}

// decodeOne requires stdout to be exactly one JSON object.
func decodeOne(t testing.TB, stdout string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not the expected JSON object: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Fatalf("more than one JSON object on stdout:\n%s", stdout)
	}
}

// loopFS makes a loop filesystem whose image is named like an EBS volume.
func loopFS(t *testing.T, fstype string) *fixture.LoopFS {
	t.Helper()
	fixture.RequireLoopFS(t, fstype)
	vol := fmt.Sprintf("vol-0%x", time.Now().UnixNano()&0xffffffffff)
	return loopFSAt(t, t.TempDir(), fstype, 64, vol+".img")
}

// loopFSAt makes a loop filesystem of sizeMB from the image dir/name; its
// cleanup (unmount, detach) runs before those registered earlier.
func loopFSAt(t *testing.T, dir, fstype string, sizeMB int, name string) *fixture.LoopFS {
	t.Helper()
	fs, err := fixture.NewLoopFSNamed(dir, fstype, sizeMB, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := fs.Close(); err != nil {
			t.Errorf("loopfs %s cleanup: %v", name, err)
		}
	})
	return fs
}

// writer starts one write (create+write+fsync) on the mount and returns a
// channel that receives its completion time. A blocked write is released by
// the thaw every test (and the fixture cleanup) performs.
func writer(t *testing.T, mount string) <-chan time.Time {
	done := make(chan time.Time, 1)
	go func() {
		f, err := os.OpenFile(filepath.Join(mount, fmt.Sprintf("w-%d", time.Now().UnixNano())), os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			f.Write([]byte("row\n"))
			f.Sync()
			f.Close()
		}
		done <- time.Now()
	}()
	return done
}

// requireBlocked asserts the write has not completed after wait.
func requireBlocked(t *testing.T, w <-chan time.Time, wait time.Duration) {
	t.Helper()
	select {
	case at := <-w:
		t.Fatalf("write completed at %s on a frozen filesystem", at.Format(time.RFC3339Nano))
	case <-time.After(wait):
	}
}

func requireCompletes(t *testing.T, w <-chan time.Time, within time.Duration) time.Time {
	t.Helper()
	select {
	case at := <-w:
		return at
	case <-time.After(within):
		t.Fatalf("write still blocked after %v", within)
	}
	return time.Time{}
}

func waitDead(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	p, err := state.ProcOf(pid)
	if err != nil {
		return
	}
	deadline := time.Now().Add(within)
	for p.Alive() {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still running after %v", pid, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFreezeThawCycle(t *testing.T) {
	for _, fstype := range []string{"xfs", "ext4", "btrfs"} {
		t.Run(fstype, func(t *testing.T) {
			fs := loopFS(t, fstype)
			e := newEnv(t)
			rep := e.freeze(t, "--mount", fs.Mount, "--timeout", "20s", "--run-id", "cycle-"+fstype, "--mysql-lock", "none")
			if rep.RunID != "cycle-"+fstype || len(rep.Mounts) != 1 || rep.Mounts[0].FSType != fstype ||
				rep.Mounts[0].Device != fs.Device || rep.HolderPID == 0 || rep.GuardianPID == 0 || rep.Lock.Mode != contract.LockNone {
				t.Fatalf("unexpected report %+v", rep)
			}
			wantVol := strings.TrimSuffix(filepath.Base(fs.Image), ".img")
			if len(rep.Mounts[0].VolumeIDs) != 1 || rep.Mounts[0].VolumeIDs[0] != wantVol {
				t.Fatalf("volume_ids %v, want [%s]", rep.Mounts[0].VolumeIDs, wantVol)
			}
			if d := rep.Deadline.Sub(rep.StartedAt); d < 20*time.Second || d > 21*time.Second {
				t.Fatalf("deadline %v after start, want the 20s timeout from when the guardian was armed", d)
			}
			requireDetached(t, rep.HolderPID)
			requireDetached(t, rep.GuardianPID)
			w := writer(t, fs.Mount)
			requireBlocked(t, w, 200*time.Millisecond)
			st := e.status(t)
			if len(st.Runs) != 1 || st.Runs[0].State != state.StatusHeld || !st.Runs[0].HolderAlive || !st.Runs[0].GuardAlive {
				t.Fatalf("status during hold: %+v", st)
			}
			th := e.thaw(t, rep.RunID, 0)
			if th.ThawedBy != contract.ThawedByCommand || th.Late || !th.MySQLUnlocked || len(th.Mounts) != 1 || !th.Mounts[0].Thawed {
				t.Fatalf("thaw report %+v", th)
			}
			requireCompletes(t, w, 2*time.Second)
			// Idempotent: the same report again, still exit 0.
			again := e.thaw(t, rep.RunID, 0)
			if again.ThawedBy != th.ThawedBy || again.HeldMS != th.HeldMS {
				t.Fatalf("second thaw %+v differs from %+v", again, th)
			}
			waitDead(t, rep.HolderPID, 2*time.Second)
			waitDead(t, rep.GuardianPID, 2*time.Second)
			if _, err := (&state.Dir{Path: e.stateDir}).Read(rep.RunID); err != nil {
				t.Fatalf("finished run's state must be kept for idempotent thaw: %v", err)
			}
		})
	}
}

func TestKillHolderGuardianThawsByDeadline(t *testing.T) {
	fs := loopFS(t, "xfs")
	e := newEnv(t)
	rep := e.freeze(t, "--mount", fs.Mount, "--timeout", "1500ms", "--run-id", "kill-holder")
	w := writer(t, fs.Mount)
	if err := syscall.Kill(rep.HolderPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDead(t, rep.HolderPID, time.Second)
	requireBlocked(t, w, 300*time.Millisecond) // the guardian holds until the deadline, not before
	requireThawedAtDeadline(t, requireCompletes(t, w, 5*time.Second), rep.Deadline, "the guardian")
	th := e.thaw(t, rep.RunID, contract.ExitLate)
	if th.ThawedBy != contract.ThawedByDeadline || !th.Late {
		t.Fatalf("thaw after deadline: %+v", th)
	}
	waitDead(t, rep.GuardianPID, 2*time.Second)
}

// requireThawedAtDeadline: a blocked write completed at at, which must be
// the deadline's thaw by who: not more than 50 ms before it (the hold
// lasted), not more than 250 ms after it.
func requireThawedAtDeadline(t *testing.T, at, deadline time.Time, who string) {
	t.Helper()
	if late := at.Sub(deadline); late > 250*time.Millisecond {
		t.Fatalf("%s thawed %v after the deadline, want ≤ 250ms", who, late)
	}
	if early := deadline.Sub(at); early > 50*time.Millisecond {
		t.Fatalf("write completed %v before the deadline: the hold did not last (%s)", early, who)
	}
}

func TestKillGuardianHolderStillThaws(t *testing.T) {
	fs := loopFS(t, "ext4")
	e := newEnv(t)
	t.Run("thaw command", func(t *testing.T) {
		rep := e.freeze(t, "--mount", fs.Mount, "--timeout", "20s", "--run-id", "kill-guardian-1")
		syscall.Kill(rep.GuardianPID, syscall.SIGKILL)
		waitDead(t, rep.GuardianPID, time.Second)
		w := writer(t, fs.Mount)
		requireBlocked(t, w, 150*time.Millisecond)
		th := e.thaw(t, rep.RunID, 0)
		if th.ThawedBy != contract.ThawedByCommand {
			t.Fatalf("thaw report %+v", th)
		}
		requireCompletes(t, w, 2*time.Second)
	})
	t.Run("holder deadline", func(t *testing.T) {
		rep := e.freeze(t, "--mount", fs.Mount, "--timeout", "1s", "--run-id", "kill-guardian-2")
		syscall.Kill(rep.GuardianPID, syscall.SIGKILL)
		w := writer(t, fs.Mount)
		requireThawedAtDeadline(t, requireCompletes(t, w, 5*time.Second), rep.Deadline, "the holder's own deadline")
		th := e.thaw(t, rep.RunID, contract.ExitLate)
		if th.ThawedBy != contract.ThawedByDeadline || !th.Late || !th.MySQLUnlocked {
			t.Fatalf("thaw report %+v", th)
		}
	})
}

func TestKillBothNextInvocationRecovers(t *testing.T) {
	fs := loopFS(t, "xfs")
	e := newEnv(t)
	for _, next := range []string{"status", "freeze", "recover"} {
		t.Run(next, func(t *testing.T) {
			rep := e.freeze(t, "--mount", fs.Mount, "--timeout", "60s", "--run-id", "both-"+next)
			syscall.Kill(rep.GuardianPID, syscall.SIGKILL)
			syscall.Kill(rep.HolderPID, syscall.SIGKILL)
			waitDead(t, rep.HolderPID, time.Second)
			waitDead(t, rep.GuardianPID, time.Second)
			w := writer(t, fs.Mount)
			requireBlocked(t, w, 200*time.Millisecond) // nobody left: still frozen
			switch next {
			case "status":
				st := e.status(t)
				if len(st.Runs) != 1 || st.Runs[0].State != state.StatusThawed || st.Runs[0].ThawedBy != contract.ThawedByRecovery {
					t.Fatalf("status after recovery: %+v", st)
				}
			case "freeze":
				again := e.freeze(t, "--mount", fs.Mount, "--timeout", "20s", "--run-id", "both-freeze-2")
				defer e.thaw(t, again.RunID, 0)
			case "recover": // what the systemd timer runs
				if r := e.run("recover", "--run-id", rep.RunID); r.code != 0 {
					t.Fatalf("recover: %d %s %s", r.code, r.stdout, r.stderr)
				}
			}
			requireCompletes(t, w, 2*time.Second)
			th := e.thaw(t, rep.RunID, contract.ExitLate)
			if th.ThawedBy != contract.ThawedByRecovery || !th.Late {
				t.Fatalf("thaw of a recovered run: %+v", th)
			}
		})
	}
}

func TestBusy(t *testing.T) {
	a := loopFS(t, "xfs")
	b := loopFS(t, "ext4")
	e := newEnv(t)
	rep := e.freeze(t, "--mount", a.Mount, "--timeout", "20s", "--run-id", "busy-1")
	before, _ := os.ReadFile(filepath.Join(e.stateDir, "busy-1.json"))
	for _, args := range [][]string{
		{"--mount", a.Mount},
		{"--mount", b.Mount, "--mount", a.Mount}, // b must not stay frozen
		{"--mount", b.Mount, "--run-id", "busy-1"},
	} {
		r := e.run(append([]string{"freeze", "--timeout", "5s"}, args...)...)
		if r.code != contract.ExitBusy {
			t.Fatalf("freeze %v: exit %d, want 3\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		var er contract.ErrorReport
		decodeOne(t, r.stdout, &er)
		if er.ExitCode != contract.ExitBusy || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Fatalf("error report %+v / stderr %q", er, r.stderr)
		}
		requireCompletes(t, writer(t, b.Mount), 2*time.Second)
	}
	// The holders started for the refused freezes exit without doing anything.
	e.requireOnlyProcs(t, rep.HolderPID, rep.GuardianPID)
	after, _ := os.ReadFile(filepath.Join(e.stateDir, "busy-1.json"))
	if !bytes.Equal(before, after) {
		t.Fatal("a refused freeze changed the holding run's state")
	}
	// A mount frozen outside hostagent is busy too, and the mount frozen before it is undone.
	rep2 := e.run("freeze", "--mount", b.Mount, "--timeout", "5s", "--run-id", "busy-2")
	if rep2.code != 0 {
		t.Fatalf("freeze b: %d %s %s", rep2.code, rep2.stdout, rep2.stderr)
	}
	e.thaw(t, "busy-2", 0)
	requireCompletes(t, writer(t, b.Mount), 2*time.Second)
	e.thaw(t, rep.RunID, 0)
	requireCompletes(t, writer(t, a.Mount), 2*time.Second)
}

func TestFreezeFailureUndoesEarlierMounts(t *testing.T) {
	a := loopFS(t, "xfs")
	b := loopFS(t, "ext4")
	e := newEnv(t)
	// Freeze the later mount (in freeze order) by hand: hostagent must meet
	// EBUSY on it after freezing the first, and undo the first.
	first, second := a, b
	if b.Mount < a.Mount {
		first, second = b, a
	}
	if err := fixtureFreeze(second.Mount); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Thaw() })
	r := e.run("freeze", "--mount", a.Mount, "--mount", b.Mount, "--timeout", "5s", "--run-id", "undo")
	if r.code != contract.ExitBusy {
		t.Fatalf("exit %d, want 3: %s %s", r.code, r.stdout, r.stderr)
	}
	requireCompletes(t, writer(t, first.Mount), 2*time.Second)
	if !second.Thaw() {
		t.Fatal("hostagent thawed a mount it did not freeze")
	}
	st := e.status(t)
	if len(st.Runs) != 1 || st.Runs[0].State != state.StatusFailed {
		t.Fatalf("status %+v", st)
	}
	// thaw of a failed run: nothing held, exit 0.
	e.thaw(t, "undo", 0)
}

func TestBadInputsExit2NothingFrozen(t *testing.T) {
	fs := loopFS(t, "xfs")
	e := newEnv(t)
	tmpfs := filepath.Join(t.TempDir(), "ram")
	os.MkdirAll(tmpfs, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", tmpfs).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", tmpfs).Run() })
	notMount := t.TempDir()
	unreadable := filepath.Join(t.TempDir(), "nope.cnf")
	M := fs.Mount
	cases := []struct {
		name string
		args []string
		want string // the bad value, named on stderr
	}{
		{"no mount", []string{"freeze"}, "--mount"},
		{"root", []string{"freeze", "--mount", "/"}, `"/"`},
		{"tmp", []string{"freeze", "--mount", "/tmp"}, "/tmp"},
		{"var log", []string{"freeze", "--mount", "/var/log"}, "/var/log"},
		{"boot", []string{"freeze", "--mount", "/boot"}, "/boot"},
		{"proc", []string{"freeze", "--mount", "/proc"}, "/proc"},
		{"relative", []string{"freeze", "--mount", "mnt"}, `"mnt"`},
		{"dotdot", []string{"freeze", "--mount", M + "/../mnt"}, ".."},
		{"not a mount point", []string{"freeze", "--mount", notMount}, "not a mount point"},
		{"tmpfs", []string{"freeze", "--mount", tmpfs}, "tmpfs"},
		{"duplicate", []string{"freeze", "--mount", M, "--mount", M}, "twice"},
		{"valid plus bad", []string{"freeze", "--mount", M, "--mount", "/tmp"}, "/tmp"},
		{"timeout 0", []string{"freeze", "--mount", M, "--timeout", "0"}, "--timeout 0s"},
		{"timeout negative", []string{"freeze", "--mount", M, "--timeout", "-1s"}, "--timeout -1s"},
		{"timeout too long", []string{"freeze", "--mount", M, "--timeout", "11m"}, "--timeout 11m0s"},
		{"timeout garbage", []string{"freeze", "--mount", M, "--timeout", "soon"}, "soon"},
		{"lock mode", []string{"freeze", "--mount", M, "--mysql-lock", "table"}, `"table"`},
		{"defaults file", []string{"freeze", "--mount", M, "--mysql-defaults-file", unreadable}, unreadable},
		{"lock wait", []string{"freeze", "--mount", M, "--lock-wait", "0s"}, "--lock-wait"},
		{"run id", []string{"freeze", "--mount", M, "--run-id", "bad id!"}, "bad id!"},
		{"run id dash", []string{"freeze", "--mount", M, "--run-id", "-x"}, "-x"},
		{"run id long", []string{"freeze", "--mount", M, "--run-id", strings.Repeat("a", 65)}, "aaaa"},
		{"unknown flag", []string{"freeze", "--mount", M, "--force"}, "force"},
		{"extra argument", []string{"freeze", "--mount", M, "now"}, "now"},
		{"unknown command", []string{"freez"}, "freez"},
		{"thaw without run id", []string{"thaw"}, "--run-id"},
		{"thaw unknown run", []string{"thaw", "--run-id", "never-was"}, "never-was"},
		{"check tmp", []string{"check", "--mount", "/tmp"}, "/tmp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(tc.args...)
			if line := requireUsageLine(t, r); !strings.Contains(line, tc.want) {
				t.Fatalf("stderr must name %q, got %q", tc.want, line)
			}
			if tc.args[0] == "check" {
				var cr contract.CheckReport
				decodeOne(t, r.stdout, &cr)
				if cr.OK || len(cr.Problems) == 0 {
					t.Fatalf("check report %+v", cr)
				}
			} else {
				var er contract.ErrorReport
				decodeOne(t, r.stdout, &er)
				if er.ExitCode != 2 || er.Error == "" {
					t.Fatalf("error report %+v", er)
				}
			}
			requireCompletes(t, writer(t, M), 2*time.Second)
		})
	}
	// Nothing was reserved or held by any of them, and no process was left.
	e.requireOnlyProcs(t)
	runs, _ := (&state.Dir{Path: e.stateDir}).List()
	if len(runs) != 0 {
		t.Fatalf("bad input left runs in the state dir: %+v", runs)
	}
}

func TestCheckChangesNothing(t *testing.T) {
	fs := loopFS(t, "xfs")
	e := newEnv(t)
	r := e.run("check", "--mount", fs.Mount, "--mysql-lock", "none")
	if r.code != 0 {
		t.Fatalf("check: %d %s %s", r.code, r.stdout, r.stderr)
	}
	var cr contract.CheckReport
	decodeOne(t, r.stdout, &cr)
	if !cr.OK || len(cr.Mounts) != 1 || cr.Mounts[0].FSType != "xfs" || len(cr.Mounts[0].VolumeIDs) != 1 || cr.Lock.Mode != contract.LockNone {
		t.Fatalf("check report %+v", cr)
	}
	requireCompletes(t, writer(t, fs.Mount), 2*time.Second)
	if _, err := os.Stat(e.stateDir); err == nil {
		t.Fatal("check created the state dir")
	}
}

func TestVersion(t *testing.T) {
	e := newEnv(t)
	r := e.run("version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "hostagent ") {
		t.Fatalf("version: %d %q", r.code, r.stdout)
	}
}

// fixtureFreeze freezes a test mount by hand (as an operator's fsfreeze would).
func fixtureFreeze(path string) error {
	return fsfreeze.Freeze(path, 0)
}

func TestThawBypassesHungHolder(t *testing.T) {
	fs := loopFS(t, "xfs")
	e := newEnv(t)
	rep := e.freeze(t, "--mount", fs.Mount, "--timeout", "30s", "--run-id", "hung")
	// A stopped holder accepts the connection (the kernel does) but never answers.
	if err := syscall.Kill(rep.HolderPID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, rep.HolderPID)
	w := writer(t, fs.Mount)
	start := time.Now()
	th := e.thaw(t, rep.RunID, 0)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("thaw waited %v for a hung holder", took)
	}
	if th.ThawedBy != contract.ThawedByRecovery || th.Late || !th.MySQLUnlocked || !th.Mounts[0].Thawed {
		t.Fatalf("thaw report %+v", th)
	}
	requireCompletes(t, w, 2*time.Second)
	waitDead(t, rep.HolderPID, 2*time.Second)   // SIGKILL works on a stopped process
	waitDead(t, rep.GuardianPID, 2*time.Second) // sees the run finished and exits
	again := e.thaw(t, rep.RunID, 0)
	if again.ThawedBy != contract.ThawedByRecovery {
		t.Fatalf("second thaw %+v", again)
	}
}

// requireDetached checks what SSM needs: the process has its own session and
// holds no pipe (stdio on /dev/null), so the freeze command's output closes.
// The holder closes its report pipe right after writing the report, which the
// client may print first: allow it a moment.
func requireDetached(t *testing.T, pid int) {
	t.Helper()
	sid, err := unix.Getsid(pid)
	if err != nil || sid != pid {
		t.Errorf("pid %d: session %d (%v), want its own session", pid, sid, err)
	}
	var problems []string
	for deadline := time.Now().Add(500 * time.Millisecond); ; time.Sleep(5 * time.Millisecond) {
		problems = problems[:0]
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range fds {
			target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if strings.HasPrefix(target, "pipe:") {
				problems = append(problems, fmt.Sprintf("fd %s is a pipe (%s)", fd.Name(), target))
			}
			if len(fd.Name()) == 1 && fd.Name() <= "2" && target != "/dev/null" {
				problems = append(problems, fmt.Sprintf("stdio fd %s is %s, want /dev/null", fd.Name(), target))
			}
		}
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, p := range problems {
		t.Errorf("pid %d: %s", pid, p)
	}
}

// A descriptor leaked into hostagent by its caller (as a shell or agent may
// leak one) must not be kept open by the holder or guardian: the caller would
// wait for EOF on it until the hold ends.
func TestFreezeDoesNotKeepLeakedDescriptors(t *testing.T) {
	fs := loopFS(t, "xfs")
	e := newEnv(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd := exec.Command(agentBin, "freeze", "--mysql-lock", "none", "--mount", fs.Mount, "--timeout", "20s", "--run-id", "leak")
	cmd.Env = append(os.Environ(), state.EnvDir+"="+e.stateDir)
	// Leak it at fd 9, not close-on-exec (fd 3 would be replaced by the holder's report pipe).
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	cmd.ExtraFiles = []*os.File{devnull, devnull, devnull, devnull, devnull, devnull, pw}
	out, err := cmd.Output()
	pw.Close()
	if err != nil {
		t.Fatalf("freeze: %v %s", err, out)
	}
	defer e.thaw(t, "leak", 0)
	pr.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := pr.Read(make([]byte, 1)); n != 0 || err == nil || !strings.Contains(err.Error(), "EOF") {
		t.Fatalf("leaked pipe still open in the hold processes: n=%d err=%v", n, err)
	}
}

// agentProcs lists the hostagent processes working on this env's state dir.
func (e *env) agentProcs() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + ent.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(cmdline), e.stateDir) {
			continue
		}
		if p, err := state.ProcOf(pid); err == nil && p.Alive() {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids
}

// requireOnlyProcs waits (bounded) until exactly the given processes work on the state dir.
func (e *env) requireOnlyProcs(t *testing.T, want ...int) {
	t.Helper()
	sort.Ints(want)
	var got []int
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = e.agentProcs(); fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
	}
	t.Fatalf("hostagent processes on %s: %v, want %v", e.stateDir, got, want)
}

// waitStopped waits (bounded) until pid is in the stopped state: SIGSTOP takes
// effect asynchronously, when each thread next passes through the kernel.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && (b[i+2] == 'T' || b[i+2] == 't') {
			return
		}
	}
	t.Fatalf("pid %d did not stop", pid)
}

// Concurrent freezes: of different mounts all succeed; of one mount exactly one
// wins and the others are busy (the reservation is atomic under the state lock).
func TestConcurrentFreezes(t *testing.T) {
	a, b := loopFS(t, "xfs"), loopFS(t, "ext4")
	e := newEnv(t)
	type outcome struct {
		id string
		r  result
	}
	freezeAll := func(mounts ...string) []outcome {
		out := make(chan outcome, len(mounts))
		for i, m := range mounts {
			id := fmt.Sprintf("conc-%d-%d", time.Now().UnixNano()%1e6, i)
			go func() {
				out <- outcome{id, e.run("freeze", "--mysql-lock", "none", "--mount", m, "--timeout", "20s", "--run-id", id)}
			}()
		}
		var res []outcome
		for range mounts {
			res = append(res, <-out)
		}
		return res
	}
	for _, o := range freezeAll(a.Mount, b.Mount) {
		if o.r.code != 0 {
			t.Fatalf("freeze %s: %d %s %s", o.id, o.r.code, o.r.stdout, o.r.stderr)
		}
		e.thaw(t, o.id, 0)
	}
	codes := map[contract.ExitCode]int{}
	for _, o := range freezeAll(a.Mount, a.Mount, a.Mount) {
		codes[o.r.code]++
		if o.r.code == 0 {
			defer e.thaw(t, o.id, 0)
		}
	}
	if codes[0] != 1 || codes[contract.ExitBusy] != 2 {
		t.Fatalf("exit codes %v, want one 0 and two 3", codes)
	}
}
