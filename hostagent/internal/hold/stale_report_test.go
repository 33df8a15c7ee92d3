package hold

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/state"
)

// fakePendingHolder stands in for a started holder: on the go-ahead, act
// changes the run's record (as the holder, the guardian or time would), then
// the FreezeReport is sent on the report pipe.
func fakePendingHolder(t *testing.T, a *Agent, runID string, act func(run *state.Run)) *PendingHolder {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cr, cw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait(); cr.Close(); pw.Close() })
	go func() {
		if n, _ := cr.Read(make([]byte, 1)); n != 1 {
			return
		}
		run, err := a.Dir.Read(runID)
		if err != nil {
			t.Error(err)
			return
		}
		now := time.Now()
		run.Status, run.FrozenAt = state.StatusHeld, now
		run.Deadline, run.DeadlineMono, run.DeadlineFinal = now.Add(run.Timeout), state.MonoNow()+int64(run.Timeout), true
		act(run)
		if err := a.Dir.Write(run); err != nil {
			t.Error(err)
		}
		rep := &contract.FreezeReport{RunID: runID, Deadline: run.Deadline, FrozenAt: now}
		json.NewEncoder(pw).Encode(holderMsg{Freeze: rep})
	}()
	return &PendingHolder{pid: sleeper.Process.Pid, proc: sleeper.Process, report: pr, control: cw}
}

// A client paused (SIGSTOP) between the holder's report and printing it must
// not print a success for a hold that already ended: it checks the run's
// state and the deadline on the monotonic clock right before answering.
func TestFreezeNeverReportsAHoldThatEnded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		act   func(run *state.Run)
		wants string // "" = the report is returned
	}{
		{"held", func(run *state.Run) {}, ""},
		{"thawed by the deadline meanwhile", func(run *state.Run) {
			run.Status = state.StatusThawed
			run.Thaw = &contract.ThawReport{RunID: run.RunID, ThawedBy: contract.ThawedByDeadline, Late: true, Mounts: []contract.MountThaw{}}
		}, "thawed"},
		{"deadline passed, not yet thawed", func(run *state.Run) {
			run.DeadlineMono = state.MonoNow() - int64(time.Millisecond)
		}, "deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			a := r.agent(t)
			req := Request{RunID: "paused", Timeout: 5 * time.Second, StartedAt: time.Now(), StartMono: state.MonoNow(),
				Mounts: []state.Mount{{Path: "/a", Dev: 1}}}
			rep, err := a.Freeze(context.Background(), req, fakePendingHolder(t, a, req.RunID, tc.act))
			if tc.wants == "" {
				if err != nil || rep == nil {
					t.Fatalf("held run: %v, %v", rep, err)
				}
				return
			}
			if err == nil || rep != nil || contract.ExitCodeOf(err) != contract.ExitFailed || !strings.Contains(err.Error(), tc.wants) {
				t.Fatalf("got %+v, %v; want no report and a plain failure naming %q", rep, err, tc.wants)
			}
			if run, _ := a.Dir.Read("paused"); run.Active() {
				t.Fatalf("run left %s", run.Status)
			}
		})
	}
}

// A holder that dies right after the go-ahead is reported as dead, with its
// exit status, at once: not as "no report within" the whole wait.
func TestFreezeSaysTheHolderDied(t *testing.T) {
	r := &recorder{}
	a := r.agent(t)
	a.Exe = holderScript(t, "#!/bin/sh\nhead -c1 <&4 >/dev/null\nexit 3\n")
	req := Request{RunID: "dies", Timeout: 5 * time.Second, StartedAt: time.Now(), StartMono: state.MonoNow(),
		Mounts: []state.Mount{{Path: "/a", Dev: 1}}}
	start := time.Now()
	_, err := a.Freeze(context.Background(), req, nil)
	if err == nil || !strings.Contains(err.Error(), "died") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("got %v; want it to say the holder died, with exit status 3", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %v to notice a dead holder", took)
	}
	if run, _ := a.Dir.Read("dies"); run == nil || run.Active() {
		t.Fatalf("run after a dead holder: %+v", run)
	}
}

// holderScript writes a stand-in for the holder process (the agent's Exe)
// and returns its path.
func holderScript(t *testing.T, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "holder")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}
