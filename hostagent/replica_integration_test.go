package main

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/fixture"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

// replicaOnLoop starts a primary and a read-only replica whose datadir is on
// a fresh loop XFS mount (the mount the tests freeze).
func replicaOnLoop(t *testing.T) (*fixture.LoopFS, *mariadb.Replication) {
	t.Helper()
	fixture.SkipUnlessMariaDB(t)
	fs := loopFS(t, "xfs")
	r := fixture.StartReplicationForTest(t, mariadb.ReplicationOptions{ReplicaDataDir: fs.Mount + "/data"})
	if err := r.Primary().Exec("CREATE DATABASE q", "CREATE TABLE q.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	replicaCaughtUp(t, r)
	return fs, r
}

func replicaCaughtUp(t *testing.T, r *mariadb.Replication) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
}

// requireApplier waits (bounded) until the default connection's SQL thread
// is in state want ("Yes" or "No").
func requireApplier(t *testing.T, r *mariadb.Replication, want string, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := r.WaitThreads(ctx, "", "", want); err != nil {
		t.Fatalf("replica applier: %v", err)
	}
}

func freezeReplica(t *testing.T, e *env, fs *fixture.LoopFS, r *mariadb.Replication, runID, timeout string) contract.FreezeReport {
	t.Helper()
	rep := e.freeze(t, "--mount", fs.Mount, "--mysql-socket", r.Replica.Socket, "--mysql-lock", "replica",
		"--timeout", timeout, "--run-id", runID)
	if rep.Lock.Mode != contract.LockReplica || rep.Lock.Replication == nil ||
		!slices.Equal(rep.Lock.Replication.StoppedAppliers, []string{""}) || len(rep.Lock.Replication.Channels) != 1 {
		t.Fatalf("lock info %+v", rep.Lock)
	}
	if c := rep.Lock.Replication.Channels[0]; c.SourcePort != r.Primary().Port || c.SourceLogFile == "" || c.GTID == "" {
		t.Fatalf("channel %+v: want the primary's port %d and its coordinates", c, r.Primary().Port)
	}
	requireApplier(t, r, "No", time.Second)
	return rep
}

// The source's writes go on during every hold below; the replica applies
// them once its applier is started again.
func requireReplicationResumes(t *testing.T, r *mariadb.Replication) {
	t.Helper()
	requireApplier(t, r, "Yes", 5*time.Second)
	if err := r.Primary().Exec("INSERT INTO q.t (v) VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	replicaCaughtUp(t, r)
}

func TestReplicaModeThawRestartsApplier(t *testing.T) {
	fs, r := replicaOnLoop(t)
	e := newEnv(t)
	rep := freezeReplica(t, e, fs, r, "replica-thaw", "20s")
	if err := r.Primary().Exec("INSERT INTO q.t (v) VALUES (1)"); err != nil {
		t.Fatalf("the source stalled during a replica-mode hold: %v", err)
	}
	th := e.thaw(t, rep.RunID, 0)
	if !th.MySQLUnlocked || th.ThawedBy != contract.ThawedByCommand {
		t.Fatalf("thaw %+v", th)
	}
	requireReplicationResumes(t, r)
}

func TestReplicaModeRefusedOnPrimaryExit2(t *testing.T) {
	fs, r := replicaOnLoop(t)
	e := newEnv(t)
	res := e.run("freeze", "--mount", fs.Mount, "--mysql-socket", r.Primary().Socket, "--mysql-lock", "replica",
		"--timeout", "10s", "--run-id", "replica-on-primary")
	if res.code != contract.ExitUsage || !strings.Contains(res.stderr, "is not a replica") ||
		strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
		t.Fatalf("exit %d, stderr %q: want 2 and one line saying it is not a replica", res.code, res.stderr)
	}
	requireCompletes(t, writer(t, fs.Mount), 2*time.Second)
	e.requireOnlyProcs(t)
}

// TestReplicaModeFailsafeRestartsApplier: a replica left with its applier
// stopped is this mode's "left frozen"; every layer that thaws a dead or
// late holder's run starts the applier again.
func TestReplicaModeFailsafeRestartsApplier(t *testing.T) {
	fs, r := replicaOnLoop(t)
	var e *env
	// Each case has its own state dir, and one that fails leaves the
	// replica replicating for the next.
	fresh := func(t *testing.T) {
		e = newEnv(t)
		t.Cleanup(func() {
			if err := r.Replica.Exec("START ALL SLAVES"); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
	}
	t.Run("holder killed: guardian at the deadline", func(t *testing.T) {
		fresh(t)
		rep := freezeReplica(t, e, fs, r, "replica-kill-holder", "2s")
		syscall.Kill(rep.HolderPID, syscall.SIGKILL)
		waitDead(t, rep.HolderPID, time.Second)
		time.Sleep(300 * time.Millisecond)
		requireApplier(t, r, "No", time.Second) // the holder's death alone restarts nothing
		requireApplier(t, r, "Yes", time.Until(rep.Deadline)+3*time.Second)
		if th := e.thaw(t, rep.RunID, contract.ExitLate); th.ThawedBy != contract.ThawedByDeadline || !th.MySQLUnlocked {
			t.Fatalf("thaw %+v: want the deadline, with the applier started (mysql_unlocked)", th)
		}
		requireReplicationResumes(t, r)
	})
	t.Run("guardian killed: holder's own deadline", func(t *testing.T) {
		fresh(t)
		rep := freezeReplica(t, e, fs, r, "replica-kill-guardian", "1500ms")
		syscall.Kill(rep.GuardianPID, syscall.SIGKILL)
		requireApplier(t, r, "Yes", time.Until(rep.Deadline)+3*time.Second)
		e.thaw(t, rep.RunID, contract.ExitLate)
		requireReplicationResumes(t, r)
	})
	t.Run("deadline, nobody killed", func(t *testing.T) {
		fresh(t)
		rep := freezeReplica(t, e, fs, r, "replica-deadline", "1500ms")
		requireApplier(t, r, "Yes", time.Until(rep.Deadline)+3*time.Second)
		th := e.thaw(t, rep.RunID, contract.ExitLate)
		if th.ThawedBy != contract.ThawedByDeadline {
			t.Fatalf("thaw %+v", th)
		}
		requireReplicationResumes(t, r)
	})
	for _, next := range []string{"thaw", "recover"} {
		t.Run("both killed: "+next, func(t *testing.T) {
			fresh(t)
			rep := freezeReplica(t, e, fs, r, "replica-both-"+next, "60s")
			syscall.Kill(rep.GuardianPID, syscall.SIGKILL)
			syscall.Kill(rep.HolderPID, syscall.SIGKILL)
			waitDead(t, rep.HolderPID, time.Second)
			waitDead(t, rep.GuardianPID, time.Second)
			requireApplier(t, r, "No", time.Second)
			var th contract.ThawReport
			switch next {
			case "thaw": // recovers the stale run first, as every invocation does: late
				th = e.thaw(t, rep.RunID, contract.ExitLate)
			case "recover": // what the systemd timer runs
				if res := e.run("recover", "--run-id", rep.RunID); res.code != 0 {
					t.Fatalf("recover: %d %s %s", res.code, res.stdout, res.stderr)
				}
				th = e.thaw(t, rep.RunID, contract.ExitLate)
			}
			if th.ThawedBy != contract.ThawedByRecovery || !th.MySQLUnlocked {
				t.Fatalf("thaw %+v: want recovery, with the applier started (mysql_unlocked)", th)
			}
			requireReplicationResumes(t, r)
			requireCompletes(t, writer(t, fs.Mount), 2*time.Second)
		})
	}
}
