package hold

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/state"
)

// blockingThaw makes the fake FITHAW of path block until release is called,
// as a thaw blocks in the kernel on a filesystem whose freeze waits for
// another frozen one. release runs at cleanup too, so nothing stays blocked.
func blockingThaw(t *testing.T, r *recorder, a *Agent, path string) (release func()) {
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	a.FS.Thaw = func(p string) (bool, error) {
		if p == path {
			<-gate
		}
		r.add("thaw " + p)
		return true, nil
	}
	return release
}

// deadProc is a process that does not exist: its pid is beyond pid_max.
var deadProc = state.Proc{PID: 1 << 22, Start: 1}

// agentWithBlockedThaw is an agent whose FITHAW of path blocks until release
// (blockingThaw), with run recorded, its holder and guardian dead.
func agentWithBlockedThaw(t *testing.T, path string, run *state.Run) (*recorder, *Agent, func()) {
	t.Helper()
	r := &recorder{}
	a := r.agent(t)
	release := blockingThaw(t, r, a, path)
	run.Holder, run.Guardian = deadProc, deadProc
	if err := a.Dir.Write(run); err != nil {
		t.Fatal(err)
	}
	return r, a, release
}

// A thaw blocked in the kernel on one mount must not keep the others frozen,
// and the run must stay recorded as needing thaw (not finished), so that a
// later recovery retries it.
func TestThawDoesNotStopAtABlockedMount(t *testing.T) {
	r, a, release := agentWithBlockedThaw(t, "/b", &state.Run{RunID: "stuck", Status: state.StatusHeld, Client: deadProc,
		StartedAt: time.Now(), DeadlineMono: state.MonoNow() + int64(time.Hour), DeadlineFinal: true,
		Mounts: []state.Mount{{Path: "/a"}, {Path: "/b"}, {Path: "/c"}}})
	type outcome struct {
		rep *contract.ThawReport
		err error
	}
	done := make(chan outcome, 1)
	start := time.Now()
	go func() { rep, err := a.Thaw(context.Background(), "stuck"); done <- outcome{rep, err} }()
	var o outcome
	select {
	case o = <-done:
	case <-time.After(thawWait + 5*time.Second):
		t.Fatalf("thaw still blocked after %v on one mount; calls %v", time.Since(start), r.get())
	}
	if o.err == nil || o.rep == nil || !o.rep.Mounts[0].Thawed || o.rep.Mounts[1].Thawed || !o.rep.Mounts[2].Thawed {
		t.Fatalf("got %+v, %v; want /a and /c thawed, /b reported not thawed", o.rep, o.err)
	}
	got, err := a.Dir.Read("stuck")
	if err != nil || !got.Active() || len(got.ThawPending) != 1 || got.ThawPending[0] != "/b" {
		t.Fatalf("run after a thaw that did not return: %+v, %v; want it active with /b pending", got, err)
	}
	if st, err := a.Status("stuck"); err != nil || len(st.Runs) != 1 || fmt.Sprint(st.Runs[0].ThawPending) != "[/b]" {
		t.Fatalf("status of a run with a pending thaw: %+v, %v", st, err)
	}
	// Once the kernel lets go, the next invocation's recovery finishes the job.
	release()
	if ids, err := a.Recover(context.Background(), ""); err != nil || len(ids) != 1 {
		t.Fatalf("recover: %v, %v", ids, err)
	}
	if got, _ := a.Dir.Read("stuck"); got.Active() || got.Thaw == nil || !got.Thaw.Mounts[1].Thawed {
		t.Fatalf("after recovery: %+v", got)
	}
}

// The freeze client that gives up on a silent holder must not record the run
// failed (which nothing ever retries) while a thaw has not returned, nor stop
// the guardian that would retry it.
func TestAbandonLeavesPendingThawToRecovery(t *testing.T) {
	r, a, release := agentWithBlockedThaw(t, "/a", &state.Run{RunID: "aband", Status: state.StatusStarting, Freezing: true,
		Client: state.Self(), StartedAt: time.Now(), DeadlineMono: state.MonoNow() + int64(time.Hour),
		Mounts: []state.Mount{{Path: "/a"}, {Path: "/b"}}})
	a.abandon("aband", errHolderGone)
	got, err := a.Dir.Read("aband")
	if err != nil || got.Status == state.StatusFailed || !got.Active() || len(got.ThawPending) != 1 {
		t.Fatalf("run after abandon with a blocked thaw: %+v, %v; want it active, /a pending", got, err)
	}
	if calls := r.get(); !equal(calls, []string{"thaw /b"}) {
		t.Fatalf("calls %v: /b must be thawed without waiting for /a", calls)
	}
	release()
}
