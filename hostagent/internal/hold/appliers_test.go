package hold

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/state"
)

// withAppliers fakes mysqllock.RestartAppliers; it fails while *down.
func (r *recorder) withAppliers(a *Agent, down *bool) {
	a.MySQL.RestartAppliers = func(ctx context.Context, o state.MySQL, channels []string) error {
		r.add(fmt.Sprintf("start appliers %q", channels))
		if *down {
			return errors.New("server down")
		}
		return nil
	}
}

// A replica-mode run whose holder and guardian died: thaw from the state
// file and recovery start the recorded appliers, after the mounts thaw; a
// failed start is reported (mysql_unlocked false), kept on record, and a
// repeated thaw tries again.
func TestRecoveryAndThawRestartAppliers(t *testing.T) {
	dead := state.Proc{PID: 1 << 22, Start: 1}
	for _, how := range []string{"recover", "thaw"} {
		for _, down := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/server down %v", how, down), func(t *testing.T) {
				r := &recorder{}
				a := r.agent(t)
				r.withAppliers(a, &down)
				run := &state.Run{RunID: "r1", Status: state.StatusHeld, Holder: dead, Guardian: dead, Client: dead,
					StartedAt: time.Now(), DeadlineMono: state.MonoNow() + int64(time.Hour), Freezing: true,
					MySQL: state.MySQL{Mode: contract.LockReplica}, LockMode: contract.LockReplica,
					Mounts: []state.Mount{{Path: "/a"}}, ReplicaAppliers: []string{"", "east"}}
				if err := a.Dir.Write(run); err != nil {
					t.Fatal(err)
				}
				if how == "recover" {
					a.Recover(context.Background(), "")
				} else {
					a.Thaw(context.Background(), "r1")
				}
				want := []string{"thaw /a", `start appliers ["" "east"]`}
				if !equal(r.get(), want) {
					t.Fatalf("calls %q, want %q (thaw first: an applier started on a frozen datadir hangs)", r.get(), want)
				}
				got, _ := a.Dir.Read("r1")
				if got.Active() || got.Thaw == nil || got.Thaw.MySQLUnlocked == down || (len(got.ReplicaAppliers) == 0) != !down {
					t.Fatalf("run after %s: status %s, thaw %+v, appliers %q", how, got.Status, got.Thaw, got.ReplicaAppliers)
				}
				if !down {
					return
				}
				down = false
				a.Thaw(context.Background(), "r1")
				got, _ = a.Dir.Read("r1")
				if len(got.ReplicaAppliers) != 0 || !got.Thaw.MySQLUnlocked {
					t.Fatalf("repeated thaw did not start the appliers: %q, thaw %+v, calls %q", got.ReplicaAppliers, got.Thaw, r.get())
				}
			})
		}
	}
}

// The holder records the appliers its lock stopped before it freezes, and
// a release that started them clears the record.
func TestHolderRecordsStoppedAppliers(t *testing.T) {
	r := &recorder{}
	a := r.agent(t)
	a.MySQL.Acquire = func(ctx context.Context, o state.MySQL) (Lock, contract.LockInfo, error) {
		return fakeLock{r}, contract.LockInfo{Mode: contract.LockReplica,
			Replication: &contract.Replication{StoppedAppliers: []string{""}}}, nil
	}
	recorded := make(chan []string, 8)
	freeze := a.FS.Freeze
	a.FS.Freeze = func(p string, dev uint64) error {
		run, _ := a.Dir.Read("h1")
		recorded <- run.ReplicaAppliers
		return freeze(p, dev)
	}
	startingRun(t, a, "h1", 10*time.Second)
	msg, done := runHolder(t, a, "h1")
	if msg.Freeze == nil {
		t.Fatalf("holder: %+v", msg)
	}
	if got := <-recorded; !equal(got, []string{""}) {
		t.Fatalf("at the first freeze the record names appliers %q, want [\"\"]", got)
	}
	if _, err := a.Thaw(context.Background(), "h1"); err != nil {
		t.Fatal(err)
	}
	<-done
	if got, _ := a.Dir.Read("h1"); len(got.ReplicaAppliers) != 0 || !got.Thaw.MySQLUnlocked {
		t.Fatalf("after release: appliers %q, thaw %+v", got.ReplicaAppliers, got.Thaw)
	}
}
