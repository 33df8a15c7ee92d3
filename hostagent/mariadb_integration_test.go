package main

// Integration tests of freeze and check against a real mariadbd on a loop
// XFS mount: the lock blocks writes until thaw, the deadline thaws a killed
// holder, lock waits, an option file with a tricky password, and lock mode
// replica on a real primary/replica pair.

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/fixture"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

// mariadbOnLoop starts a private mariadbd whose datadir is on a fresh loop XFS
// mount, so freezing the mount really stalls the server's writes.
func mariadbOnLoop(t *testing.T) (*fixture.LoopFS, *mariadb.Server, *sql.DB) {
	t.Helper()
	fixture.SkipUnlessMariaDB(t)
	fs := loopFS(t, "xfs")
	m := fixture.StartMariaDBForTest(t, mariadb.Options{DataDir: fs.Mount + "/data"})
	db, err := m.DB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(8)
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS q",
		"CREATE TABLE IF NOT EXISTS q.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB",
		"INSERT INTO q.t (v) VALUES (1)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return fs, m, db
}

// insert runs one autocommit INSERT in the background; the channel gets its
// completion time (or zero time on error, reported through t.Error).
func insert(t *testing.T, db *sql.DB) <-chan time.Time {
	done := make(chan time.Time, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "INSERT INTO q.t (v) VALUES (2)"); err != nil {
			t.Errorf("insert: %v", err)
		}
		done <- time.Now()
	}()
	return done
}

func TestMariaDBFreezeBlocksInsertsUntilThaw(t *testing.T) {
	fs, m, db := mariadbOnLoop(t)
	e := newEnv(t)
	for _, mode := range []string{contract.LockFTWRL, contract.LockBackupStage, contract.LockAuto} {
		t.Run(mode, func(t *testing.T) {
			rep := e.freeze(t, "--mount", fs.Mount, "--mysql-socket", m.Socket, "--mysql-lock", mode,
				"--timeout", "20s", "--run-id", "maria-"+mode)
			if rep.Lock.Mode == contract.LockNone || rep.Lock.BinlogFile == "" || rep.Lock.ServerVersion == "" {
				t.Fatalf("lock info %+v", rep.Lock)
			}
			if mode != contract.LockAuto && rep.Lock.Mode != mode {
				t.Fatalf("lock mode %q, want %q", rep.Lock.Mode, mode)
			}
			w := insert(t, db)
			requireBlocked(t, w, 300*time.Millisecond)
			th := e.thaw(t, rep.RunID, 0)
			if !th.MySQLUnlocked || th.ThawedBy != contract.ThawedByCommand {
				t.Fatalf("thaw %+v", th)
			}
			requireCompletes(t, w, 5*time.Second)
		})
	}
}

func TestMariaDBKillHolderThawsByDeadline(t *testing.T) {
	fs, m, db := mariadbOnLoop(t)
	e := newEnv(t)
	rep := e.freeze(t, "--mount", fs.Mount, "--mysql-socket", m.Socket, "--mysql-lock", "ftwrl",
		"--lock-wait", "1s", "--timeout", "2s", "--run-id", "maria-kill")
	w := insert(t, db)
	syscall.Kill(rep.HolderPID, syscall.SIGKILL)
	at := requireCompletes(t, w, 10*time.Second)
	// The server drops FTWRL with the holder's connection at once, but the
	// frozen filesystem keeps the commit waiting until the guardian's thaw.
	if early := rep.Deadline.Sub(at); early > 50*time.Millisecond {
		t.Fatalf("insert committed %v before the deadline: the freeze did not hold", early)
	}
	// The thaw itself is due by deadline + 250 ms; the server then needs a
	// moment (more on a loaded machine) to finish the commit.
	if late := at.Sub(rep.Deadline); late > 2*time.Second {
		t.Fatalf("insert committed %v after the deadline", late)
	}
	th := e.thaw(t, rep.RunID, contract.ExitLate)
	if th.ThawedBy != contract.ThawedByDeadline || !th.Late {
		t.Fatalf("thaw %+v", th)
	}
	if late := th.ThawedAt.Sub(rep.Deadline); late > 250*time.Millisecond {
		t.Fatalf("guardian thawed %v after the deadline", late)
	}
}

func TestMariaDBLockWaitExit5NothingHeld(t *testing.T) {
	fs, m, db := mariadbOnLoop(t)
	e := newEnv(t)
	// A long write statement: FTWRL queues behind it and, with it, every writer.
	blocker, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var blockerID int64
	if err := blocker.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&blockerID); err != nil {
		t.Fatal(err)
	}
	go blocker.ExecContext(context.Background(), "UPDATE q.t SET v=v+1 WHERE SLEEP(20)=0")
	t.Cleanup(func() { db.Exec(fmt.Sprintf("KILL %d", blockerID)); blocker.Close() })
	time.Sleep(200 * time.Millisecond) // let the UPDATE start

	start := time.Now()
	r := e.run("freeze", "--mount", fs.Mount, "--mysql-socket", m.Socket, "--mysql-lock", "ftwrl",
		"--lock-wait", "1s", "--timeout", "10s", "--run-id", "maria-wait")
	took := time.Since(start)
	if r.code != contract.ExitLockWait {
		t.Fatalf("exit %d, want 5\n%s%s", r.code, r.stdout, r.stderr)
	}
	if took < 900*time.Millisecond || took > 3*time.Second {
		t.Fatalf("lock wait took %v, want about 1s", took)
	}
	if !strings.Contains(r.stderr, "lock") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("stderr %q", r.stderr)
	}
	if _, err := db.Exec(fmt.Sprintf("KILL %d", blockerID)); err != nil {
		t.Fatal(err)
	}
	// Nothing frozen, nothing locked: writes flow.
	requireCompletes(t, writer(t, fs.Mount), 2*time.Second)
	requireCompletes(t, insert(t, db), 5*time.Second)
	e.thaw(t, "maria-wait", 0) // a failed run: nothing to thaw
}

func TestMariaDBCheck(t *testing.T) {
	fs, m, db := mariadbOnLoop(t)
	e := newEnv(t)
	r := e.run("check", "--mount", fs.Mount, "--mysql-socket", m.Socket, "--mysql-lock", "ftwrl")
	if r.code != 0 {
		t.Fatalf("check: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var cr contract.CheckReport
	decodeOne(t, r.stdout, &cr)
	if !cr.OK || cr.Lock.ServerVersion == "" || len(cr.Mounts) != 1 {
		t.Fatalf("check report %+v", cr)
	}
	requireCompletes(t, insert(t, db), 5*time.Second)
	// A socket with no server behind it: a MySQL problem, reported, nothing changed.
	r = e.run("check", "--mount", fs.Mount, "--mysql-socket", fs.Mount+"/no.sock")
	if r.code == 0 {
		t.Fatalf("check with a dead socket passed: %s", r.stdout)
	}
	decodeOne(t, r.stdout, &cr)
	if cr.OK || len(cr.Problems) == 0 {
		t.Fatalf("check report %+v", cr)
	}
}

// MariaDB has no LOCK INSTANCE FOR BACKUP: asking for it is bad input (exit 2),
// found by the holder after connecting, and nothing stays frozen or locked.
func TestMariaDBInstanceModeRefused(t *testing.T) {
	fs, m, db := mariadbOnLoop(t)
	e := newEnv(t)
	r := e.run("freeze", "--mount", fs.Mount, "--mysql-socket", m.Socket, "--mysql-lock", "instance",
		"--timeout", "10s", "--run-id", "maria-instance")
	if r.code != contract.ExitUsage {
		t.Fatalf("exit %d, want 2\n%s%s", r.code, r.stdout, r.stderr)
	}
	var er contract.ErrorReport
	decodeOne(t, r.stdout, &er)
	if !strings.Contains(er.Error, "instance") {
		t.Fatalf("error report %+v", er)
	}
	requireCompletes(t, writer(t, fs.Mount), 2*time.Second)
	requireCompletes(t, insert(t, db), 5*time.Second)
	e.requireOnlyProcs(t)
}

// The hostagent binary logs in through an option file whose password needs
// the file's quoting and escapes (p a"s's #x), checks, freezes and thaws with
// it: the same file the mariadb client reads.
func TestMariaDBOptionFileWithTrickyPassword(t *testing.T) {
	fs, m, db := mariadbOnLoop(t)
	const password = `p a"s's #x`
	for _, q := range []string{
		`CREATE OR REPLACE USER 'tricky'@'localhost' IDENTIFIED BY 'p a"s\'s #x'`,
		"GRANT RELOAD, PROCESS, BINLOG MONITOR ON *.* TO 'tricky'@'localhost'",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	cnf := filepath.Join(t.TempDir(), "my.cnf")
	body := fmt.Sprintf("[client]\nuser = tricky\npassword = \"p a\\\"s's #x\" # quoted, escaped\nsocket = %s\n", m.Socket)
	if err := os.WriteFile(cnf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	r := e.run("check", "--mount", fs.Mount, "--mysql-defaults-file", cnf, "--mysql-lock", "backup-stage")
	if r.code != 0 {
		t.Fatalf("check through the option file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	rep := e.freeze(t, "--mount", fs.Mount, "--mysql-defaults-file", cnf, "--mysql-lock", "backup-stage",
		"--timeout", "20s", "--run-id", "tricky-pw")
	if rep.Lock.Mode != contract.LockBackupStage {
		t.Fatalf("lock %+v", rep.Lock)
	}
	w := insert(t, db)
	requireBlocked(t, w, 300*time.Millisecond)
	e.thaw(t, rep.RunID, 0)
	requireCompletes(t, w, 5*time.Second)
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(out, password) {
			t.Errorf("output shows the password: %s", out)
		}
	}
}

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
		"--lock-wait", "1s", "--timeout", timeout, "--run-id", runID)
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
