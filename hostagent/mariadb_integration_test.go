package main

import (
	"context"
	"database/sql"
	"fmt"
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
