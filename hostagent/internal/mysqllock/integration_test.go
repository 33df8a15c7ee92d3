package mysqllock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quiesce/quiesce/test/fixture/mariadb"
	"github.com/quiesce/quiesce/test/syncbuf"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/fixture"
)

// One real mariadbd for the whole package (install+start ~1 s): every test
// leaves it unlocked, and uses its own tables.
var (
	srv        *mariadb.Server
	srvSkip    string
	srvStartup time.Duration
)

func TestMain(m *testing.M) {
	code := func() int {
		if srvSkip = mariadb.Unavailable(); srvSkip == "" {
			var err error
			srv, err = mariadb.Start(mariadb.Options{})
			if err != nil {
				fmt.Fprintln(os.Stderr, "mysqllock tests: start mariadb:", err)
				return 1
			}
			defer srv.Stop()
			srvStartup = srv.StartupTime
		}
		return m.Run()
	}()
	os.Exit(code)
}

// server returns the shared server and a pool to it, or skips.
func server(t testing.TB) (*mariadb.Server, *sql.DB) {
	t.Helper()
	if srv == nil {
		t.Skip("mariadb fixture: " + srvSkip)
	}
	db, err := srv.DB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return srv, db
}

func exec(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func opts(m *mariadb.Server, mode string) Options {
	return Options{Mode: mode, Socket: m.Socket, Explicit: true, LockWait: 2 * time.Second}
}

// acquire takes the lock and always releases it in cleanup, so a failing
// test never leaves the shared server locked.
func acquire(t *testing.T, o Options) (*Lock, contract.LockInfo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	l, info, err := Acquire(ctx, o)
	if err != nil {
		t.Fatalf("Acquire(%s): %v", o.Mode, err)
	}
	t.Cleanup(func() { l.Release(context.Background()) })
	return l, info
}

// startWrite runs stmt on its own connection and reports its result.
func startWrite(db *sql.DB, timeout time.Duration, stmt string) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := db.ExecContext(ctx, stmt)
		done <- err
	}()
	return done
}

func masterStatus(t testing.TB, db *sql.DB) (string, uint64) {
	t.Helper()
	var file, doDB, ignoreDB string
	var pos uint64
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &doDB, &ignoreDB); err != nil {
		t.Fatal(err)
	}
	return file, pos
}

// waitWritable asserts that a write completes promptly: nothing is held.
func waitWritable(t *testing.T, db *sql.DB, table string) {
	t.Helper()
	start := time.Now()
	if err := <-startWrite(db, 3*time.Second, "INSERT INTO "+table+" (v) VALUES (0)"); err != nil {
		t.Fatalf("write after the lock attempt: %v (after %v): something is still held", err, time.Since(start))
	}
	// Promptly, but not in a stopwatch sense: the INSERT's commit fsyncs on a
	// disk that other test packages share (mkfs, mariadb installs), and under
	// `go test ./...` on 2 cores one took 1.8 s with nothing held. A lock
	// still held would keep it waiting until startWrite's 3 s (fatal above).
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("write took %v after the lock attempt", d)
	}
}

func TestLockBlocksInsertUntilRelease(t *testing.T) {
	m, db := server(t)
	exec(t, db, "CREATE DATABASE IF NOT EXISTS lk", "CREATE TABLE IF NOT EXISTS lk.blocks (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB",
		"CREATE TABLE IF NOT EXISTS lk.blocks_myisam (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=MyISAM")
	for _, tt := range []struct{ requested, want string }{
		{contract.LockFTWRL, contract.LockFTWRL},
		{contract.LockBackupStage, contract.LockBackupStage},
		{contract.LockAuto, contract.LockBackupStage},
	} {
		t.Run(tt.requested, func(t *testing.T) {
			l, info := acquire(t, opts(m, tt.requested))
			if info.Mode != tt.want || info.Requested != tt.requested {
				t.Errorf("mode %q requested %q, want %q/%q", info.Mode, info.Requested, tt.want, tt.requested)
			}
			if !strings.Contains(info.ServerVersion, "MariaDB") || info.ConnectionID == 0 || info.ConnectionID != l.ConnectionID() {
				t.Errorf("info %+v, lock connection %d", info, l.ConnectionID())
			}
			// Both a transactional and a non-transactional write must wait.
			inno := startWrite(db, 10*time.Second, "INSERT INTO lk.blocks (v) VALUES (1)")
			myisam := startWrite(db, 10*time.Second, "INSERT INTO lk.blocks_myisam (v) VALUES (1)")
			select {
			case err := <-inno:
				t.Fatalf("InnoDB INSERT finished while %s held (err %v)", info.Mode, err)
			case err := <-myisam:
				t.Fatalf("MyISAM INSERT finished while %s held (err %v)", info.Mode, err)
			case <-time.After(300 * time.Millisecond):
			}
			released := time.Now()
			if err := l.Release(context.Background()); err != nil {
				t.Fatalf("Release: %v", err)
			}
			for name, ch := range map[string]<-chan error{"InnoDB": inno, "MyISAM": myisam} {
				select {
				case err := <-ch:
					if err != nil {
						t.Errorf("%s INSERT after release: %v", name, err)
					}
				case <-time.After(2 * time.Second):
					t.Fatalf("%s INSERT still blocked 2s after Release", name)
				}
			}
			t.Logf("%s: acquired in %.2f ms; writes resumed %v after Release", info.Mode, info.AcquiredMS, time.Since(released))
			if err := l.Release(context.Background()); err != nil {
				t.Errorf("second Release: %v", err)
			}
		})
	}
}

func TestPositionMatchesMasterStatus(t *testing.T) {
	m, db := server(t)
	exec(t, db, "CREATE DATABASE IF NOT EXISTS lk", "CREATE TABLE IF NOT EXISTS lk.pos (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
		"INSERT INTO lk.pos (v) VALUES (1)")
	for _, mode := range []string{contract.LockFTWRL, contract.LockBackupStage} {
		t.Run(mode, func(t *testing.T) {
			l, info := acquire(t, opts(m, mode))
			if err := l.Release(context.Background()); err != nil {
				t.Fatal(err)
			}
			file, pos := masterStatus(t, db)
			if info.BinlogFile != file || info.BinlogPos != pos {
				t.Errorf("reported %s:%d, SHOW MASTER STATUS after release %s:%d", info.BinlogFile, info.BinlogPos, file, pos)
			}
			var gtid string
			db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&gtid)
			if info.GTIDExecuted == "" || info.GTIDExecuted != gtid {
				t.Errorf("gtid %q, server gtid_binlog_pos %q", info.GTIDExecuted, gtid)
			}
		})
	}
	// The position moves with a write and the report follows it.
	t.Run("after write", func(t *testing.T) {
		_, before := masterStatus(t, db)
		exec(t, db, "INSERT INTO lk.pos (v) VALUES (2)")
		l, info := acquire(t, opts(m, contract.LockAuto))
		l.Release(context.Background())
		if info.BinlogPos <= before {
			t.Errorf("position %d did not advance past %d after a write", info.BinlogPos, before)
		}
	})
}

// With innodb_flush_log_at_trx_commit=2 the redo is flushed under the lock.
func TestLockWithLazyRedoFlush(t *testing.T) {
	m, db := server(t)
	exec(t, db, "SET GLOBAL innodb_flush_log_at_trx_commit = 2")
	t.Cleanup(func() { db.Exec("SET GLOBAL innodb_flush_log_at_trx_commit = 1") })
	for _, mode := range []string{contract.LockFTWRL, contract.LockBackupStage} {
		l, info := acquire(t, opts(m, mode))
		if info.BinlogFile == "" {
			t.Errorf("%s: no binlog position with flush_log_at_trx_commit=2", mode)
		}
		if err := l.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// runningStatement starts stmt on its own connection and waits until the
// server shows it running for at least minAge; it kills it in cleanup.
func runningStatement(t *testing.T, db *sql.DB, stmt string, minAge time.Duration) (id uint64, done <-chan error) {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		_, err := conn.ExecContext(ctx, stmt)
		conn.Close()
		ch <- err
	}()
	t.Cleanup(func() {
		db.Exec(fmt.Sprintf("KILL QUERY %d", id))
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Errorf("statement on thread %d did not end after KILL", id)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ms float64
		err := db.QueryRow("SELECT TIME_MS FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO IS NOT NULL", id).Scan(&ms)
		if err == nil && time.Duration(ms*float64(time.Millisecond)) >= minAge {
			return id, ch
		}
		if time.Now().After(deadline) {
			t.Fatalf("statement %q never showed as running (last err %v)", stmt, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// slowUpdateRunning creates lk.<slow> (one row; tableOpts such as
// " ENGINE=MyISAM") and lk.<flow> (for probe writes), and leaves a 20 s
// UPDATE of the slow row running on another connection.
func slowUpdateRunning(t *testing.T, db *sql.DB, slow, tableOpts, flow string) {
	t.Helper()
	exec(t, db, "CREATE DATABASE IF NOT EXISTS lk", "CREATE TABLE IF NOT EXISTS lk."+slow+" (id INT PRIMARY KEY, v INT)"+tableOpts,
		"INSERT IGNORE INTO lk."+slow+" VALUES (1, 0)",
		"CREATE TABLE IF NOT EXISTS lk."+flow+" (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	runningStatement(t, db, "UPDATE lk."+slow+" SET v=v+1 WHERE SLEEP(20)=0", 50*time.Millisecond)
}

func TestLockWaitTimeoutBehindLongUpdate(t *testing.T) {
	m, db := server(t)
	slowUpdateRunning(t, db, "slow", "", "flow")

	for _, wait := range []time.Duration{time.Second, 500 * time.Millisecond} {
		t.Run("ftwrl lock-wait "+wait.String(), func(t *testing.T) {
			o := opts(m, contract.LockFTWRL)
			o.LockWait = wait
			start := time.Now()
			l, info, err := Acquire(context.Background(), o)
			elapsed := time.Since(start)
			if err == nil {
				l.Release(context.Background())
				t.Fatalf("Acquire succeeded behind a running UPDATE: %+v", info)
			}
			if !errors.Is(err, contract.ErrLockWait) {
				t.Fatalf("error %v does not wrap ErrLockWait", err)
			}
			want := fmt.Sprintf("mysql lock ftwrl not acquired within %s", wait)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q, want it to contain %q", err, want)
			}
			lo, hi := wait-200*time.Millisecond, wait+2*time.Second
			if elapsed < lo || elapsed > hi {
				t.Errorf("failed after %v, want between %v and %v", elapsed, lo, hi)
			}
			t.Logf("lock-wait %v: failed after %v: %v", wait, elapsed, err)
			// Nothing held: writes flow, and no session of ours waits for a lock.
			waitWritable(t, db, "lk.flow")
			var waiting int
			db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'FLUSH TABLES WITH READ LOCK%'").Scan(&waiting)
			if waiting != 0 {
				t.Errorf("%d FTWRL statements still pending on the server", waiting)
			}
		})
	}

	// backup-stage does not wait behind a running transactional write: it
	// blocks the commit instead (the reason auto picks it on MariaDB).
	t.Run("backup-stage does not wait", func(t *testing.T) {
		o := opts(m, contract.LockBackupStage)
		o.LockWait = time.Second
		l, info := acquire(t, o)
		if info.AcquiredMS > 200 {
			t.Errorf("backup-stage took %.1f ms behind a running UPDATE", info.AcquiredMS)
		}
		t.Logf("backup-stage acquired in %.3f ms with a long UPDATE running", info.AcquiredMS)
		if err := l.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitWritable(t, db, "lk.flow")
	})
}

func TestLongQueryLimit(t *testing.T) {
	m, db := server(t)
	exec(t, db, "CREATE DATABASE IF NOT EXISTS lk", "CREATE TABLE IF NOT EXISTS lk.lq (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	// An idle connection (Sleep) older than the limit must not count.
	idle, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if err := idle.PingContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	id, done := runningStatement(t, db, "SELECT SLEEP(30)", 1100*time.Millisecond)

	o := opts(m, contract.LockFTWRL)
	o.LongQueryLimit = time.Second
	start := time.Now()
	var l *Lock
	l, _, err = Acquire(context.Background(), o)
	if err == nil {
		l.Release(context.Background())
		t.Fatal("Acquire succeeded with a statement older than --long-query-limit")
	}
	var lqe *LongQueryError
	if !errors.Is(err, contract.ErrLockWait) || !errors.As(err, &lqe) {
		t.Fatalf("error %v: want a LongQueryError wrapping ErrLockWait", err)
	}
	if len(lqe.Queries) != 1 || lqe.Queries[0].ID != id {
		t.Errorf("long queries %v, want only thread %d (idle, own and system threads do not count)", lqe.Queries, id)
	}
	for _, want := range []string{fmt.Sprintf("thread %d", id), "root@localhost", "SELECT SLEEP(30)", "--long-query-limit 1s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if time.Since(start) > time.Second {
		t.Errorf("refusal took %v", time.Since(start))
	}
	waitWritable(t, db, "lk.lq")
	select {
	case err := <-done:
		t.Fatalf("refusing must not kill the statement (it ended: %v)", err)
	default:
	}

	// A higher limit does not see it.
	o.LongQueryLimit = time.Minute
	l, _ = acquire(t, o)
	l.Release(context.Background())

	// With --kill-long-queries it is killed and the lock taken.
	o.LongQueryLimit = time.Second
	o.KillLongQueries = true
	l, info := acquire(t, o)
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("killed statement reported success")
		}
		t.Logf("long statement ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the long SELECT was not killed")
	}
	if info.Mode != contract.LockFTWRL {
		t.Errorf("mode %q", info.Mode)
	}
	if len(info.KilledQueries) != 1 || info.KilledQueries[0] != id {
		t.Errorf("report killed_queries %v, want [%d]", info.KilledQueries, id)
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestInstanceModeOnMariaDBIsRefused(t *testing.T) {
	m, db := server(t)
	exec(t, db, "CREATE DATABASE IF NOT EXISTS lk", "CREATE TABLE IF NOT EXISTS lk.inst (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, _, err := Acquire(ctx, opts(m, contract.LockInstance))
	if err == nil {
		l.Release(context.Background())
		t.Fatal("instance mode accepted on MariaDB")
	}
	if !errors.Is(err, contract.ErrUsage) || !strings.Contains(err.Error(), "needs MySQL 8.0 or later") || !strings.Contains(err.Error(), "MariaDB 10.") {
		t.Errorf("error %v: want a usage error naming the server", err)
	}
	if _, err := Check(ctx, opts(m, contract.LockInstance)); !errors.Is(err, contract.ErrUsage) {
		t.Errorf("Check(instance) = %v, want usage error", err)
	}
	waitWritable(t, db, "lk.inst")
}

func TestCheck(t *testing.T) {
	m, _ := server(t)
	o := opts(m, contract.LockAuto)
	o.LongQueryLimit = 10 * time.Second
	o.KillLongQueries = true
	info, err := Check(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode != contract.LockBackupStage || info.Requested != contract.LockAuto || info.BinlogFile == "" || !strings.Contains(info.ServerVersion, "MariaDB") {
		t.Errorf("Check = %+v", info)
	}
	// With delay_key_write=ALL, MyISAM index blocks live in server memory
	// until the table is closed: auto must pick ftwrl, which closes them.
	_, db := server(t)
	exec(t, db, "SET GLOBAL delay_key_write = ALL")
	info, err = Check(context.Background(), o)
	exec(t, db, "SET GLOBAL delay_key_write = ON")
	if err != nil || info.Mode != contract.LockFTWRL {
		t.Errorf("Check(auto) with delay_key_write=ALL = %q, %v; want ftwrl", info.Mode, err)
	}
	// mode none / auto without a server: nothing to check, no connection.
	saved := socketPaths
	socketPaths = []string{"/nonexistent/mysqld.sock"}
	defer func() { socketPaths = saved }()
	info, err = Check(context.Background(), Options{Mode: contract.LockAuto, LockWait: time.Second})
	if err != nil || info.Mode != contract.LockNone {
		t.Errorf("Check(auto, no server) = %+v, %v", info, err)
	}
}

// A user with a password, from a defaults file, missing privileges: errors
// name what is missing, and the password appears in no error and no log line.
func TestLimitedUserAndPasswordRedaction(t *testing.T) {
	m, db := server(t)
	exec(t, db, "CREATE USER IF NOT EXISTS 'limited'@'localhost' IDENTIFIED BY '"+testSecret+"'",
		"GRANT SELECT ON *.* TO 'limited'@'localhost'")
	t.Cleanup(func() { db.Exec("DROP USER IF EXISTS 'limited'@'localhost'") })

	logs := captureSlog(t)
	cnf := writeFile(t, "limited.cnf", fmt.Sprintf("[client]\nuser = limited\npassword = \"%s\"\nsocket = %s\n", testSecret, m.Socket), 0o600)
	wrong := writeFile(t, "wrong.cnf", fmt.Sprintf("[client]\nuser=limited\npassword=%sX\nsocket=%s\n", testSecret, m.Socket), 0o600)
	var errs []error

	o := Options{Mode: contract.LockFTWRL, DefaultsFile: cnf, LockWait: time.Second, LongQueryLimit: time.Second, KillLongQueries: true}
	_, err := Check(context.Background(), o)
	if err == nil {
		t.Fatal("Check passed for a user without RELOAD/PROCESS")
	}
	for _, want := range []string{"lacks RELOAD", "lacks PROCESS", "lacks CONNECTION ADMIN or CONNECTION_ADMIN or SUPER", "limited@localhost"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error %q does not say %q", err, want)
		}
	}
	errs = append(errs, err)

	o.LongQueryLimit, o.KillLongQueries = 0, false
	_, _, err = Acquire(context.Background(), o)
	if err == nil || errors.Is(err, contract.ErrLockWait) || !strings.Contains(err.Error(), "RELOAD") {
		t.Errorf("Acquire without RELOAD: %v, want a plain error naming RELOAD", err)
	}
	errs = append(errs, err)

	o.DefaultsFile = wrong
	_, _, err = Acquire(context.Background(), o)
	if err == nil || errors.Is(err, contract.ErrLockWait) || errors.Is(err, contract.ErrUsage) || !strings.Contains(err.Error(), "Access denied") {
		t.Errorf("Acquire with a wrong password: %v, want a plain access-denied error", err)
	}
	errs = append(errs, err)
	_, err = Check(context.Background(), o)
	errs = append(errs, err)
	errs = append(errs, KillConnection(context.Background(), o, 999999))

	for _, err := range errs {
		if err != nil && strings.Contains(err.Error(), testSecret) {
			t.Errorf("error contains the password: %v", err)
		}
		if err != nil {
			t.Logf("error (expected): %v", err)
		}
	}
	if out := logs.String(); strings.Contains(out, testSecret) {
		t.Errorf("log output contains the password:\n%s", out)
	}
}

// captureSlog routes the default logger (at debug level) into a buffer for the test.
func captureSlog(t *testing.T) *syncbuf.Buffer {
	buf := &syncbuf.Buffer{}
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return buf
}

func TestKillConnectionReleasesLock(t *testing.T) {
	m, db := server(t)
	exec(t, db, "CREATE DATABASE IF NOT EXISTS lk", "CREATE TABLE IF NOT EXISTS lk.kill (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	o := opts(m, contract.LockFTWRL)
	l, _ := acquire(t, o)
	blocked := startWrite(db, 10*time.Second, "INSERT INTO lk.kill (v) VALUES (1)")
	select {
	case err := <-blocked:
		t.Fatalf("INSERT not blocked (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := KillConnection(context.Background(), o, l.ConnectionID()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-blocked:
		if err != nil {
			t.Fatalf("INSERT after kill: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("INSERT still blocked after KillConnection")
	}
	// The holder's Release after a kill finds the connection gone: success.
	if err := l.Release(context.Background()); err != nil {
		t.Errorf("Release after kill: %v", err)
	}
	// Killing a connection that is already gone is fine too.
	if err := KillConnection(context.Background(), o, l.ConnectionID()); err != nil {
		t.Errorf("second KillConnection: %v", err)
	}
}

// The holder sits idle for up to --timeout; a short server wait_timeout
// must not drop its connection (and the lock).
func TestIdleHolderSurvivesShortWaitTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("sleeps 2 s")
	}
	m, db := server(t)
	exec(t, db, "CREATE DATABASE IF NOT EXISTS lk", "CREATE TABLE IF NOT EXISTS lk.idle (id INT AUTO_INCREMENT PRIMARY KEY, v INT)",
		"SET GLOBAL wait_timeout = 1", "SET GLOBAL interactive_timeout = 1")
	t.Cleanup(func() {
		db.Exec("SET GLOBAL wait_timeout = 28800")
		db.Exec("SET GLOBAL interactive_timeout = 28800")
	})
	l, _ := acquire(t, opts(m, contract.LockFTWRL))
	exec(t, db, "SET GLOBAL wait_timeout = 28800", "SET GLOBAL interactive_timeout = 28800")
	time.Sleep(2 * time.Second)
	blocked := startWrite(db, 10*time.Second, "INSERT INTO lk.idle (v) VALUES (1)")
	select {
	case err := <-blocked:
		t.Fatalf("lock was dropped while idle (INSERT returned %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
}

func TestNoneAndNil(t *testing.T) {
	l, info, err := Acquire(context.Background(), Options{Mode: contract.LockNone, LockWait: time.Second})
	if err != nil || l != nil || info.Mode != contract.LockNone || info.Requested != contract.LockNone {
		t.Fatalf("Acquire(none) = %v, %+v, %v", l, info, err)
	}
	if err := l.Release(context.Background()); err != nil {
		t.Errorf("nil Release: %v", err)
	}
	if l.ConnectionID() != 0 || l.Mode() != "" {
		t.Error("nil lock has an id or mode")
	}
	// Invalid options never connect.
	if _, _, err := Acquire(context.Background(), Options{Mode: "bogus", LockWait: time.Second}); !errors.Is(err, contract.ErrUsage) {
		t.Errorf("Acquire(bogus) = %v", err)
	}
	// A named server that is not there is a plain error, quickly.
	start := time.Now()
	_, _, err = Acquire(context.Background(), Options{Mode: contract.LockAuto, Socket: "/nonexistent/q.sock", LockWait: time.Second})
	if err == nil || errors.Is(err, contract.ErrLockWait) || errors.Is(err, contract.ErrUsage) || time.Since(start) > 3*time.Second {
		t.Errorf("Acquire on a missing socket: %v after %v", err, time.Since(start))
	}
}

func TestCancelledContextLeavesNothingHeld(t *testing.T) {
	m, db := server(t)
	slowUpdateRunning(t, db, "cslow", "", "cflow")
	o := opts(m, contract.LockFTWRL)
	o.LockWait = 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := Acquire(ctx, o)
	if err == nil {
		t.Fatal("Acquire succeeded")
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("cancelled Acquire returned after %v", time.Since(start))
	}
	// The pending FTWRL (which would block every writer) must be gone.
	waitWritable(t, db, "lk.cflow")
}

// Under write load, nothing commits while the lock is held: the binary log
// stays at the reported position and the table does not change, i.e. the
// tagged position describes exactly the data a freeze would capture.
func TestPositionIsExactUnderWriteLoad(t *testing.T) {
	m, db := server(t)
	exec(t, db, "CREATE DATABASE IF NOT EXISTS lk", "CREATE TABLE IF NOT EXISTS lk.load (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB",
		"CREATE TABLE IF NOT EXISTS lk.load_myisam (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=MyISAM")
	db.SetMaxOpenConns(8)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, table := range []string{"lk.load", "lk.load", "lk.load_myisam"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				db.ExecContext(ctx, "INSERT INTO "+table+" (v) VALUES (1)")
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()
	time.Sleep(50 * time.Millisecond)

	count := func() (n int) {
		db.QueryRow("SELECT (SELECT COUNT(*) FROM lk.load) + (SELECT COUNT(*) FROM lk.load_myisam)").Scan(&n)
		return n
	}
	for _, mode := range []string{contract.LockFTWRL, contract.LockBackupStage} {
		t.Run(mode, func(t *testing.T) {
			l, info := acquire(t, opts(m, mode))
			rows := count()
			time.Sleep(200 * time.Millisecond)
			file, pos := masterStatus(t, db)
			var gtid string
			db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&gtid)
			if file != info.BinlogFile || pos != info.BinlogPos || gtid != info.GTIDExecuted {
				t.Errorf("binlog moved while %s held: reported %s:%d %s, now %s:%d %s", mode, info.BinlogFile, info.BinlogPos, info.GTIDExecuted, file, pos, gtid)
			}
			if after := count(); after != rows {
				t.Errorf("rows changed while %s held: %d -> %d", mode, rows, after)
			}
			if err := l.Release(context.Background()); err != nil {
				t.Fatal(err)
			}
			// ...and writes resume.
			deadline := time.Now().Add(2 * time.Second)
			for count() == rows {
				if time.Now().After(deadline) {
					t.Fatal("writes did not resume after Release")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// Without a binary log the lock works and the position is simply empty.
func TestBinlogDisabled(t *testing.T) {
	if srv == nil {
		t.Skip("mariadb fixture: " + srvSkip)
	}
	m := fixture.StartMariaDBForTest(t, mariadb.Options{NoLogBin: true})
	for _, mode := range []string{contract.LockFTWRL, contract.LockAuto} {
		l, info := acquire(t, opts(m, mode))
		if info.BinlogFile != "" || info.BinlogPos != 0 {
			t.Errorf("%s without log-bin: position %s:%d, want empty", mode, info.BinlogFile, info.BinlogPos)
		}
		if err := l.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	info, err := Check(context.Background(), opts(m, contract.LockAuto))
	if err != nil || info.BinlogFile != "" {
		t.Errorf("Check without log-bin = %+v, %v", info, err)
	}
}

// `auto` with nothing named finds a socket file at a usual path that nobody
// listens on: no database, so mode none. Named explicitly, it is an error.
func TestAutoWithStaleSocket(t *testing.T) {
	saved := socketPaths
	defer func() { socketPaths = saved }()
	sock := filepath.Join(t.TempDir(), "mysqld.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	socketPaths = []string{sock}

	o := Options{Mode: contract.LockAuto, LockWait: time.Second}
	lk, info, err := Acquire(context.Background(), o)
	if err != nil || lk != nil || info.Mode != contract.LockNone {
		t.Errorf("Acquire(auto, stale socket) = %v, %+v, %v; want none", lk, info, err)
	}
	if info, err := Check(context.Background(), o); err != nil || info.Mode != contract.LockNone {
		t.Errorf("Check(auto, stale socket) = %+v, %v; want none", info, err)
	}
	o.Socket = sock
	if _, _, err := Acquire(context.Background(), o); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Acquire with the stale socket named: %v, want connection refused", err)
	}
}

// backup-stage failing midway (START taken, BLOCK_COMMIT times out behind a
// long non-transactional write) ends the backup stage before returning.
func TestBackupStageMidwayFailureIsUndone(t *testing.T) {
	m, db := server(t)
	slowUpdateRunning(t, db, "slow_myisam", " ENGINE=MyISAM", "mflow")

	o := opts(m, contract.LockBackupStage)
	o.LockWait = time.Second
	start := time.Now()
	l, _, err := Acquire(context.Background(), o)
	elapsed := time.Since(start)
	if err == nil {
		l.Release(context.Background())
		t.Fatal("backup-stage acquired behind a running MyISAM UPDATE")
	}
	if !errors.Is(err, contract.ErrLockWait) || !strings.Contains(err.Error(), "BACKUP STAGE BLOCK_COMMIT") {
		t.Errorf("error %v: want ErrLockWait naming BLOCK_COMMIT", err)
	}
	if elapsed < 800*time.Millisecond || elapsed > 3*time.Second {
		t.Errorf("failed after %v, want ~1s", elapsed)
	}
	// Only one backup stage can exist server-wide: if ours were left open,
	// this START would wait and time out.
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, stmt := range []string{"SET SESSION lock_wait_timeout = 1", "BACKUP STAGE START", "BACKUP STAGE END"} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s after the failed Acquire: %v (our backup stage was left open)", stmt, err)
		}
	}
	waitWritable(t, db, "lk.mflow")
}
