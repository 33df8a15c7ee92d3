package hold

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/state"
)

// recorder fakes the filesystem and MySQL, logging every call in order.
type recorder struct {
	mu       sync.Mutex
	calls    []string
	failOn   string // freeze of this path fails with ErrBusy
	lockErr  error
	released bool
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

type fakeLock struct{ r *recorder }

func (l fakeLock) Release(context.Context) error { l.r.add("unlock"); return nil }
func (l fakeLock) ConnectionID() uint64          { return 7 }
func (l fakeLock) Lost() <-chan struct{}         { return nil }
func (l fakeLock) Loss() *contract.LockLoss      { return nil }

func (r *recorder) agent(t *testing.T) *Agent {
	dir, err := os.MkdirTemp("", "qh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d, err := state.Open(filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	return &Agent{
		Dir: d,
		Exe: "/bin/true", // the guardian: starts and exits (the holder's own deadline is under test)
		FS: FS{
			Freeze: func(p string, dev uint64) error {
				r.add("freeze " + p)
				if p == r.failOn {
					return fmt.Errorf("freeze %s: already frozen: %w", p, contract.ErrBusy)
				}
				return nil
			},
			Thaw: func(p string) (bool, error) { r.add("thaw " + p); return true, nil },
		},
		MySQL: MySQL{Acquire: func(ctx context.Context, o state.MySQL) (Lock, contract.LockInfo, error) {
			r.add("lock")
			if r.lockErr != nil {
				return nil, contract.LockInfo{}, r.lockErr
			}
			return fakeLock{r}, contract.LockInfo{Mode: contract.LockFTWRL, BinlogFile: "bin.000001"}, nil
		}},
	}
}

func startingRun(t *testing.T, a *Agent, id string, timeout time.Duration) {
	t.Helper()
	run := &state.Run{RunID: id, Status: state.StatusStarting, Timeout: timeout, StartedAt: time.Now(), StartMono: state.MonoNow(),
		MySQL: state.MySQL{Mode: contract.LockFTWRL}, LockMode: contract.LockFTWRL, Client: state.Self(),
		Mounts: []state.Mount{{Path: "/a", Dev: 1}, {Path: "/b", Dev: 2}, {Path: "/c", Dev: 3}}}
	if err := a.Dir.Write(run); err != nil {
		t.Fatal(err)
	}
}

// runHolder runs Holder in a goroutine and returns its pipe message.
func runHolder(t *testing.T, a *Agent, id string) (holderMsg, <-chan error) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Holder(context.Background(), id, pw, nil) }()
	var msg holderMsg
	pr.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewDecoder(pr).Decode(&msg); err != nil {
		t.Fatalf("no holder message: %v", err)
	}
	pr.Close()
	return msg, done
}

func equal(a, b []string) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func TestHolderUndoesInReverseOnFreezeFailure(t *testing.T) {
	r := &recorder{failOn: "/c"}
	a := r.agent(t)
	startingRun(t, a, "undo", 10*time.Second)
	msg, done := runHolder(t, a, "undo")
	if msg.Freeze != nil || msg.Code != contract.ExitBusy {
		t.Fatalf("message %+v, want busy error", msg)
	}
	if err := <-done; !errors.Is(err, contract.ErrBusy) {
		t.Fatalf("holder returned %v", err)
	}
	want := []string{"lock", "freeze /a", "freeze /b", "freeze /c", "thaw /b", "thaw /a", "unlock"}
	if got := r.get(); !equal(got, want) {
		t.Fatalf("calls %v\nwant  %v", got, want)
	}
	run, _ := a.Dir.Read("undo")
	if run.Status != state.StatusFailed || run.Error == "" {
		t.Fatalf("state %+v", run)
	}
	if !errors.Is(&contract.ExitError{Code: msg.Code, Message: msg.Error}, contract.ErrBusy) {
		t.Fatal("the client would not map this to exit 3")
	}
}

func TestHolderLockFailureFreezesNothing(t *testing.T) {
	r := &recorder{lockErr: fmt.Errorf("FLUSH TABLES WITH READ LOCK: lock wait timeout: %w", contract.ErrLockWait)}
	a := r.agent(t)
	startingRun(t, a, "nolock", 10*time.Second)
	msg, done := runHolder(t, a, "nolock")
	<-done
	if msg.Code != contract.ExitLockWait || !equal(r.get(), []string{"lock"}) {
		t.Fatalf("message %+v calls %v", msg, r.get())
	}
}

func TestHolderThawsBeforeUnlock(t *testing.T) {
	r := &recorder{}
	a := r.agent(t)
	startingRun(t, a, "order", 20*time.Second)
	msg, done := runHolder(t, a, "order")
	if msg.Freeze == nil || msg.Freeze.Lock.Mode != contract.LockFTWRL || len(msg.Freeze.Mounts) != 3 {
		t.Fatalf("freeze report %+v", msg)
	}
	rep, err := a.Thaw(context.Background(), "order")
	if err != nil || rep.ThawedBy != contract.ThawedByCommand || rep.Late {
		t.Fatalf("thaw %+v %v", rep, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []string{"lock", "freeze /a", "freeze /b", "freeze /c", "thaw /c", "thaw /b", "thaw /a", "unlock"}
	if got := r.get(); !equal(got, want) {
		t.Fatalf("calls %v\nwant  %v", got, want)
	}
	// Idempotent, from the state file now that the holder is gone.
	again, err := a.Thaw(context.Background(), "order")
	if err != nil || again.ThawedBy != contract.ThawedByCommand || again.HeldMS != rep.HeldMS {
		t.Fatalf("second thaw %+v %v", again, err)
	}
}

func TestHolderOwnDeadline(t *testing.T) {
	r := &recorder{}
	a := r.agent(t)
	startingRun(t, a, "deadline", time.Second)
	msg, done := runHolder(t, a, "deadline")
	if msg.Freeze == nil {
		t.Fatalf("message %+v", msg)
	}
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("holder did not act at its deadline")
	}
	if late := time.Since(msg.Freeze.Deadline); late > 500*time.Millisecond {
		t.Fatalf("acted %v after the deadline", late)
	}
	rep, err := a.Thaw(context.Background(), "deadline")
	if !errors.Is(err, contract.ErrLate) || rep == nil || rep.ThawedBy != contract.ThawedByDeadline || !rep.Late {
		t.Fatalf("late thaw %+v %v", rep, err)
	}
}

func TestRecover(t *testing.T) {
	r := &recorder{}
	a := r.agent(t)
	dead := state.Proc{PID: 1 << 22, Start: 1} // beyond pid_max: never alive
	runs := []*state.Run{
		{RunID: "dead", Status: state.StatusHeld, Holder: dead, Guardian: dead, Client: dead,
			DeadlineMono: state.MonoNow() + int64(time.Hour), Mounts: []state.Mount{{Path: "/dead"}}},
		{RunID: "alive", Status: state.StatusHeld, Holder: state.Self(),
			DeadlineMono: state.MonoNow() + int64(time.Hour), Mounts: []state.Mount{{Path: "/alive"}}},
		// Overdue: a live process (this test, as the client) but long past the deadline.
		{RunID: "wedged", Status: state.StatusHeld, Client: state.Self(), Holder: dead,
			DeadlineMono: state.MonoNow() - int64(time.Minute), Mounts: []state.Mount{{Path: "/wedged"}}},
		{RunID: "done", Status: state.StatusThawed, Mounts: []state.Mount{{Path: "/done"}}},
	}
	for _, run := range runs {
		run.StartedAt = time.Now()
		if err := a.Dir.Write(run); err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.Recover(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if !equal(got, []string{"dead", "wedged"}) && !equal(got, []string{"wedged", "dead"}) {
		t.Fatalf("recovered %v", got)
	}
	if calls := r.get(); !equal(calls, []string{"thaw /dead", "thaw /wedged"}) && !equal(calls, []string{"thaw /wedged", "thaw /dead"}) {
		t.Fatalf("thawed %v", calls)
	}
	for _, id := range []string{"dead", "wedged"} {
		run, _ := a.Dir.Read(id)
		if run.Status != state.StatusThawed || run.Thaw.ThawedBy != contract.ThawedByRecovery || !run.Thaw.Late {
			t.Fatalf("%s: %+v", id, run.Thaw)
		}
	}
	if run, _ := a.Dir.Read("alive"); run.Status != state.StatusHeld {
		t.Fatal("a live run was recovered")
	}
}

func TestReserve(t *testing.T) {
	r := &recorder{}
	a := r.agent(t)
	base := Request{Timeout: 5 * time.Second, StartedAt: time.Now(), StartMono: state.MonoNow()}
	req := base
	req.RunID, req.Mounts = "one", []state.Mount{{Path: "/a", Dev: 10}}
	if _, err := a.reserve(req); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		id     string
		mounts []state.Mount
		want   error
	}{
		{"two", []state.Mount{{Path: "/a", Dev: 99}}, contract.ErrBusy},       // same path
		{"three", []state.Mount{{Path: "/other", Dev: 10}}, contract.ErrBusy}, // same filesystem
		{"one", []state.Mount{{Path: "/b", Dev: 11}}, contract.ErrBusy},       // active run id
		{"four", []state.Mount{{Path: "/b", Dev: 11}, {Path: "/a", Dev: 10}}, contract.ErrBusy},
	}
	for _, tc := range cases {
		req := base
		req.RunID, req.Mounts = tc.id, tc.mounts
		if _, err := a.reserve(req); !errors.Is(err, tc.want) {
			t.Errorf("%s %v: got %v, want %v", tc.id, tc.mounts, err, tc.want)
		}
	}
	run, _ := a.Dir.Read("one")
	run.Status = state.StatusThawed
	a.Dir.Write(run)
	req = base
	req.RunID, req.Mounts = "one", []state.Mount{{Path: "/a", Dev: 10}}
	if _, err := a.reserve(req); !errors.Is(err, contract.ErrUsage) {
		t.Fatalf("reusing a finished run id: %v", err)
	}
	req.RunID = "five"
	if _, err := a.reserve(req); err != nil {
		t.Fatalf("mount of a finished run must be free: %v", err)
	}
}

// A holder that never reports: the client gives up after timeout + slack,
// kills it, thaws every mount of the run and marks the run failed.
func TestFreezeAbandonsSilentHolder(t *testing.T) {
	for _, tc := range []struct {
		name               string
		recorded, finished bool
	}{
		{"holder froze", true, false},
		{"holder never recorded", false, false},
		// The client was stopped (SIGSTOP) past its wait: meanwhile the
		// guardian thawed at the deadline and a new run may hold the mounts.
		{"run finished meanwhile", true, true},
	} {
		recorded := tc.recorded
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			a := r.agent(t)
			a.Exe = holderScript(t, "#!/bin/sh\nexec sleep 60\n")
			req := Request{RunID: "silent", Timeout: time.Second, StartedAt: time.Now(), StartMono: state.MonoNow(),
				Mounts: []state.Mount{{Path: "/a", Dev: 1}, {Path: "/b", Dev: 2}}}
			start := time.Now()
			h, err := a.StartHolder(req.RunID)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.proc.Kill() })
			if recorded {
				// As a real holder does before its first lock or freeze.
				go func() {
					for until := time.Now().Add(5 * time.Second); time.Now().Before(until); time.Sleep(time.Millisecond) {
						if run, err := a.Dir.Read("silent"); err == nil {
							// As a real holder does before its first freeze.
							run.Holder, _ = state.ProcOf(h.pid)
							run.Freezing = true
							a.update(run)
							if tc.finished {
								run.Status, run.Thaw = state.StatusThawed, &contract.ThawReport{RunID: "silent", ThawedBy: contract.ThawedByDeadline}
								a.update(run)
							}
							return
						}
					}
				}()
			}
			_, err = a.Freeze(context.Background(), req, h)
			if err == nil || contract.ExitCodeOf(err) != contract.ExitFailed {
				t.Fatalf("got %v, want a plain failure", err)
			}
			if took := time.Since(start); took < req.Timeout || took > req.Timeout+answerSlack+2*time.Second {
				t.Fatalf("gave up after %v", took)
			}
			want := []string{"thaw /b", "thaw /a"}
			if !recorded || tc.finished { // it never froze anything, or it is not this client's to thaw any more
				want = nil
			}
			if got := r.get(); !equal(got, want) {
				t.Fatalf("calls %v, want %v", got, want)
			}
			if p, err := state.ProcOf(h.pid); err == nil && !waitExit(p, time.Second) {
				t.Fatal("silent holder was not killed")
			}
			run, _ := a.Dir.Read("silent")
			if wantStatus := map[bool]string{false: state.StatusFailed, true: state.StatusThawed}[tc.finished]; run.Status != wantStatus {
				t.Fatalf("status %s, want %s", run.Status, wantStatus)
			}
		})
	}
}

func TestThawReportsAMountThatDidNotThaw(t *testing.T) {
	r := &recorder{}
	a := r.agent(t)
	a.FS.Thaw = func(p string) (bool, error) {
		r.add("thaw " + p)
		if p == "/b" {
			return false, fmt.Errorf("thaw %s: input/output error", p)
		}
		return true, nil
	}
	dead := state.Proc{PID: 1 << 22, Start: 1}
	run := &state.Run{RunID: "eio", Status: state.StatusHeld, Holder: dead, Guardian: dead, Client: dead,
		StartedAt: time.Now(), DeadlineMono: state.MonoNow() + int64(time.Hour), DeadlineFinal: true,
		Mounts: []state.Mount{{Path: "/a"}, {Path: "/b"}}}
	if err := a.Dir.Write(run); err != nil {
		t.Fatal(err)
	}
	rep, err := a.Thaw(context.Background(), "eio")
	if err == nil || contract.ExitCodeOf(err) != contract.ExitFailed || rep == nil {
		t.Fatalf("got %+v, %v; want the report and a failure", rep, err)
	}
	if rep.Mounts[0].Thawed != true || rep.Mounts[1].Thawed || rep.Mounts[1].Error == "" {
		t.Fatalf("mounts %+v", rep.Mounts)
	}
	// A repeated thaw retries the failed mount: still failing, still an error...
	if _, err := a.Thaw(context.Background(), "eio"); err == nil {
		t.Fatal("second thaw hid the failed mount")
	}
	// ...and once the device recovers, the retry succeeds and is recorded.
	a.FS.Thaw = func(p string) (bool, error) { r.add("thaw " + p); return true, nil }
	rep, err = a.Thaw(context.Background(), "eio")
	if err != nil || !rep.Mounts[1].Thawed {
		t.Fatalf("third thaw %+v, %v", rep, err)
	}
	if got := r.get(); !equal(got, []string{"thaw /b", "thaw /a", "thaw /b", "thaw /b"}) {
		t.Fatalf("calls %v: only the failed mount is retried", got)
	}
}

// If another process finishes the run while the holder is freezing (recovery
// judging it stale, a thaw from the state file), the holder must not revive it
// as held: it undoes everything and reports failure.
func TestHolderDoesNotReviveAFinishedRun(t *testing.T) {
	r := &recorder{}
	a := r.agent(t)
	startingRun(t, a, "superseded", 10*time.Second)
	freeze := a.FS.Freeze
	a.FS.Freeze = func(p string, dev uint64) error {
		if p == "/c" { // meanwhile, someone else finishes the run
			run, _ := a.Dir.Read("superseded")
			run.Status = state.StatusThawed
			run.Thaw = &contract.ThawReport{RunID: "superseded", ThawedBy: contract.ThawedByRecovery, Late: true}
			if err := a.Dir.Write(run); err != nil {
				t.Error(err)
			}
		}
		return freeze(p, dev)
	}
	msg, done := runHolder(t, a, "superseded")
	<-done
	if msg.Freeze != nil || msg.Code != contract.ExitFailed {
		t.Fatalf("message %+v, want a failure", msg)
	}
	want := []string{"lock", "freeze /a", "freeze /b", "freeze /c", "thaw /c", "thaw /b", "thaw /a", "unlock"}
	if got := r.get(); !equal(got, want) {
		t.Fatalf("calls %v\nwant  %v", got, want)
	}
	if run, _ := a.Dir.Read("superseded"); run.Status != state.StatusThawed || run.Thaw.ThawedBy != contract.ThawedByRecovery {
		t.Fatalf("the other process's record was overwritten: %+v", run)
	}
}

// rcuKnob fakes /sys/kernel/rcu_expedited, recording switches with the other calls.
func (r *recorder) rcuKnob(on *bool) RCUKnob {
	return RCUKnob{
		Expedited: func() (bool, error) { return *on, nil },
		Set: func(v bool) error {
			r.add(fmt.Sprintf("rcu %v", v))
			*on = v
			return nil
		},
	}
}

func TestHolderExpeditesRCUOnlyAroundFreezes(t *testing.T) {
	for _, initially := range []bool{false, true} {
		t.Run(fmt.Sprint("initially ", initially), func(t *testing.T) {
			r := &recorder{}
			a := r.agent(t)
			on := initially
			a.RCU = r.rcuKnob(&on)
			startingRun(t, a, "run1", 10*time.Second)
			run, _ := a.Dir.Read("run1")
			run.ExpediteRCU = true
			a.Dir.Write(run)
			msg, done := runHolder(t, a, "run1")
			if msg.Freeze == nil {
				t.Fatalf("holder: %+v", msg)
			}
			want := []string{"lock", "rcu true", "freeze /a", "freeze /b", "freeze /c", "rcu false"}
			if initially { // already on (the operator's choice): never touched
				want = []string{"lock", "freeze /a", "freeze /b", "freeze /c"}
			}
			if calls := r.get(); !equal(calls, want) {
				t.Fatalf("calls %v, want %v", calls, want)
			}
			if held, _ := a.Dir.Read("run1"); held.RCURestore {
				t.Fatal("held run still asks for the knob to be restored")
			}
			if _, err := a.Thaw(context.Background(), "run1"); err != nil {
				t.Fatal(err)
			}
			<-done
			if on != initially {
				t.Fatalf("knob %v after the run, was %v", on, initially)
			}
		})
	}
}

// A run whose holder died while the knob was on: recovery and a thaw from the
// state file switch it back off (the guardian path is an integration test).
func TestRecoveryAndThawRestoreRCU(t *testing.T) {
	dead := state.Proc{PID: 1 << 22, Start: 1}
	for _, how := range []string{"recover", "thaw"} {
		t.Run(how, func(t *testing.T) {
			r := &recorder{}
			a := r.agent(t)
			on := true
			a.RCU = r.rcuKnob(&on)
			run := &state.Run{RunID: "r1", Status: state.StatusStarting, Holder: dead, Guardian: dead, Client: dead,
				StartedAt: time.Now(), DeadlineMono: state.MonoNow() + int64(time.Hour), ExpediteRCU: true, RCURestore: true,
				Mounts: []state.Mount{{Path: "/a"}}}
			if err := a.Dir.Write(run); err != nil {
				t.Fatal(err)
			}
			if how == "recover" {
				if _, err := a.Recover(context.Background(), ""); err != nil {
					t.Fatal(err)
				}
			} else if _, err := a.Thaw(context.Background(), "r1"); err != nil {
				t.Fatal(err)
			}
			if on {
				t.Fatalf("knob left on; calls %v", r.get())
			}
			if got, _ := a.Dir.Read("r1"); got.Active() || got.RCURestore {
				t.Fatalf("run after %s: status %s rcu_restore %v", how, got.Status, got.RCURestore)
			}
		})
	}
}

// A run whose holder never recorded itself froze nothing (the holder records
// itself before its first lock or freeze): ending it must not FITHAW its
// mounts, which may be frozen by someone else (an operator's fsfreeze, another
// tool) — that freeze is theirs to end.
func TestRunWithoutHolderThawsNothing(t *testing.T) {
	dead := state.Proc{PID: 1 << 22, Start: 1}
	for _, tc := range []struct {
		how    string
		holder state.Proc // recorded holder (dead by now)
		thaws  bool
	}{
		{"recover", state.Proc{}, false},
		{"thaw", state.Proc{}, false},
		// Killed while waiting for the MySQL lock: recorded, never froze.
		{"recover", dead, false},
		{"thaw", dead, false},
	} {
		how := tc.how
		t.Run(fmt.Sprintf("%s holder %d", how, tc.holder.PID), func(t *testing.T) {
			r := &recorder{}
			a := r.agent(t)
			run := &state.Run{RunID: "r1", Status: state.StatusStarting, Client: dead, StartedAt: time.Now(), Holder: tc.holder,
				DeadlineMono: state.MonoNow() + int64(time.Hour), Mounts: []state.Mount{{Path: "/theirs"}}}
			if err := a.Dir.Write(run); err != nil {
				t.Fatal(err)
			}
			var rep *contract.ThawReport
			if how == "recover" {
				if _, err := a.Recover(context.Background(), ""); err != nil {
					t.Fatal(err)
				}
				got, _ := a.Dir.Read("r1")
				rep = got.Thaw
			} else {
				var err error
				if rep, err = a.Thaw(context.Background(), "r1"); err != nil {
					t.Fatal(err)
				}
			}
			if calls := r.get(); len(calls) != 0 {
				t.Fatalf("calls %v: a run that froze nothing thawed", calls)
			}
			if got, _ := a.Dir.Read("r1"); got.Active() {
				t.Fatalf("run still %s", got.Status)
			}
			if rep == nil || len(rep.Mounts) != 1 || !rep.Mounts[0].Thawed {
				t.Fatalf("report %+v: the mount is not held by this run", rep)
			}
		})
	}
}

// Retrying a finished run's failed thaw must not FITHAW a mount that a newer
// run holds now (it could be reserved again once the old run was finished).
func TestThawRetrySkipsAMountANewerRunHolds(t *testing.T) {
	r := &recorder{}
	a := r.agent(t)
	dead := state.Proc{PID: 1 << 22, Start: 1}
	old := &state.Run{RunID: "old", Status: state.StatusThawed, StartedAt: time.Now(),
		Mounts: []state.Mount{{Path: "/x", Dev: 9}},
		Thaw:   &contract.ThawReport{RunID: "old", ThawedBy: contract.ThawedByCommand, Mounts: []contract.MountThaw{{Path: "/x", Error: "thaw /x: input/output error"}}}}
	newer := &state.Run{RunID: "newer", Status: state.StatusHeld, StartedAt: time.Now(), Holder: state.Self(), Guardian: dead,
		DeadlineMono: state.MonoNow() + int64(time.Hour), Mounts: []state.Mount{{Path: "/x", Dev: 9}}}
	for _, run := range []*state.Run{old, newer} {
		if err := a.Dir.Write(run); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := a.Thaw(context.Background(), "old")
	if calls := r.get(); len(calls) != 0 {
		t.Fatalf("calls %v: the newer run's freeze was thawed", calls)
	}
	if err == nil || rep == nil || rep.Mounts[0].Thawed || !strings.Contains(rep.Mounts[0].Error, "newer") {
		t.Fatalf("got %+v, %v; want the old failure, noting the mount is held by run newer", rep, err)
	}
}

// The holder records that it is about to freeze before its first FIFREEZE,
// so that a run killed before that point is known to hold no mount.
func TestHolderRecordsFreezingBeforeFreezing(t *testing.T) {
	r := &recorder{}
	a := r.agent(t)
	var marked []bool
	a.FS.Freeze = func(p string, dev uint64) error {
		run, err := a.Dir.Read("run1")
		marked = append(marked, err == nil && run.Freezing && run.Status == state.StatusStarting)
		r.add("freeze " + p)
		return nil
	}
	startingRun(t, a, "run1", 10*time.Second)
	msg, done := runHolder(t, a, "run1")
	if msg.Freeze == nil {
		t.Fatalf("holder: %+v", msg)
	}
	if fmt.Sprint(marked) != "[true true true]" {
		t.Fatalf("freezing recorded before each freeze: %v", marked)
	}
	// And a recorded, freezing run is thawed by recovery paths.
	run, _ := a.Dir.Read("run1")
	if out, _ := a.thawRun(run); len(out) != 3 || !equal(r.get()[len(r.get())-3:], []string{"thaw /c", "thaw /b", "thaw /a"}) {
		t.Fatalf("thawRun of a held run: %v / %v", out, r.get())
	}
	if _, err := a.Thaw(context.Background(), "run1"); err != nil {
		t.Fatal(err)
	}
	<-done
}
