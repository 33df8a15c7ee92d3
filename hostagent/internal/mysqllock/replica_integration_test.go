package mysqllock

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/fixture"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

// primaryDB is a pool on r's primary, closed when the test ends.
func primaryDB(t testing.TB, r *mariadb.Replication) *sql.DB {
	t.Helper()
	db, err := r.Primary().DB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// replication starts primaries and a replica for one test, with a table
// t_<i> (InnoDB, auto-increment) on primary i, replicated.
func replication(t *testing.T, o mariadb.ReplicationOptions) *mariadb.Replication {
	t.Helper()
	r := fixture.StartReplicationForTest(t, o)
	for i, p := range r.Primaries {
		db := "d" + strconv.Itoa(i)
		if err := p.Exec("CREATE DATABASE "+db, "CREATE TABLE "+db+".t (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB"); err != nil {
			t.Fatal(err)
		}
	}
	caughtUp(t, r)
	return r
}

func caughtUp(t testing.TB, r *mariadb.Replication) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
}

func slaveStatus(t *testing.T, r *mariadb.Replication, name string) mariadb.SlaveStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := r.SlaveStatus(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func waitThreads(t *testing.T, r *mariadb.Replication, name, io, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.WaitThreads(ctx, name, io, sql); err != nil {
		t.Fatal(err)
	}
}

func replicaRows(t *testing.T, r *mariadb.Replication, db string) int {
	t.Helper()
	pool, err := r.Replica.DB()
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var n int
	if err := pool.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+db+".t").Scan(&n); err != nil {
		t.Fatalf("read on the replica during the hold: %v", err)
	}
	return n
}

func TestReplicaModeCoordinatesMatchStoppedApplier(t *testing.T) {
	r := replication(t, mariadb.ReplicationOptions{})
	if err := r.Primary().Exec("INSERT INTO d0.t (v) VALUES (1), (2), (3)"); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, r)
	before := replicaRows(t, r, "d0")
	if ci, err := Check(context.Background(), opts(r.Replica, contract.LockReplica)); err != nil || ci.Mode != contract.LockReplica {
		t.Fatalf("check on a read-only replica: %+v, %v", ci, err)
	}

	l, info := acquire(t, opts(r.Replica, contract.LockReplica))
	if info.Mode != contract.LockReplica || info.Replication == nil || len(info.Replication.Channels) != 1 {
		t.Fatalf("lock info %+v: want mode replica with one channel", info)
	}
	if !slices.Equal(info.Replication.StoppedAppliers, []string{""}) {
		t.Errorf("stopped appliers %q, want the default connection", info.Replication.StoppedAppliers)
	}
	st := slaveStatus(t, r, "")
	if st["Slave_SQL_Running"] != "No" || st["Slave_IO_Running"] != "Yes" {
		t.Fatalf("during the hold IO/SQL running = %s/%s, want Yes/No", st["Slave_IO_Running"], st["Slave_SQL_Running"])
	}
	c := info.Replication.Channels[0]
	for _, f := range []struct{ name, got, want string }{
		{"source host", c.SourceHost, st["Master_Host"]},
		{"source port", strconv.Itoa(c.SourcePort), st["Master_Port"]},
		{"source user", c.SourceUser, st["Master_User"]},
		{"source log file", c.SourceLogFile, st["Relay_Master_Log_File"]},
		{"source log pos", strconv.FormatUint(c.SourceLogPos, 10), st["Exec_Master_Log_Pos"]},
		{"relay log file", c.RelayLogFile, st["Relay_Log_File"]},
		{"relay log pos", strconv.FormatUint(c.RelayLogPos, 10), st["Relay_Log_Pos"]},
		{"gtid", c.GTID, st["Gtid_Slave_Pos"]},
		{"using gtid", c.UsingGTID, "Slave_Pos"},
		{"sql running", c.SQLRunning, "No"},
		{"io running", c.IORunning, "Yes"},
	} {
		if f.got != f.want {
			t.Errorf("%s: report %q, SHOW ALL SLAVES STATUS %q", f.name, f.got, f.want)
		}
	}
	// Caught up and nothing written since: the executed source position is
	// the primary's binary log end, and the GTID state its gtid_binlog_pos.
	pdb := primaryDB(t, r)
	file, pos := masterStatus(t, pdb)
	if c.SourceLogFile != file || c.SourceLogPos != pos {
		t.Errorf("executed source position %s:%d, primary's binary log is at %s:%d", c.SourceLogFile, c.SourceLogPos, file, pos)
	}
	if c.SourceUser != r.ReplUser || strings.Contains(strings.ToLower(strconv.Quote(c.LastIOError+c.LastSQLError)), r.ReplPassword) {
		t.Errorf("channel %+v: want user %s and no password", c, r.ReplUser)
	}

	// The source keeps writing and the receiver keeps fetching; the data stays still.
	readBefore := slaveStatus(t, r, "")["Read_Master_Log_Pos"]
	if err := r.Primary().Exec("INSERT INTO d0.t (v) VALUES (4)"); err != nil {
		t.Fatal(err)
	}
	fetched := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !fetched; time.Sleep(20 * time.Millisecond) {
		fetched = slaveStatus(t, r, "")["Read_Master_Log_Pos"] != readBefore
	}
	if !fetched {
		t.Error("the IO thread did not fetch the source's new write during the hold")
	}
	if n := replicaRows(t, r, "d0"); n != before {
		t.Errorf("replica applied a write during the hold: %d rows, want %d", n, before)
	}

	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitThreads(t, r, "", "Yes", "Yes")
	caughtUp(t, r)
	if n := replicaRows(t, r, "d0"); n != before+1 {
		t.Errorf("after release the replica has %d rows, want %d", n, before+1)
	}
}

func TestReplicaModeRefusedOnPrimary(t *testing.T) {
	m, _ := server(t)
	_, _, err := Acquire(context.Background(), opts(m, contract.LockReplica))
	fixture.RequireUsageError(t, err, "is not a replica")
	if _, err := Check(context.Background(), opts(m, contract.LockReplica)); err == nil || !strings.Contains(err.Error(), "is not a replica") {
		t.Errorf("check on a primary: %v, want it to name the problem", err)
	}
}

func TestReplicaModeRefusedOnWritableReplica(t *testing.T) {
	r := replication(t, mariadb.ReplicationOptions{Writable: true})
	_, _, err := Acquire(context.Background(), opts(r.Replica, contract.LockReplica))
	if !errors.Is(err, contract.ErrUsage) || !strings.Contains(err.Error(), "@@read_only=0") {
		t.Fatalf("replica mode on a writable replica: %v, want a usage error (exit 2) naming @@read_only=0", err)
	}
	if st := slaveStatus(t, r, ""); st["Slave_SQL_Running"] != "Yes" {
		t.Errorf("refused, but the applier was left %q", st["Slave_SQL_Running"])
	}
	if _, err := Check(context.Background(), opts(r.Replica, contract.LockReplica)); err == nil || !strings.Contains(err.Error(), "writable") {
		t.Errorf("check on a writable replica: %v, want it to name the problem", err)
	}
}

// TestRestartAppliersOnlyThoseRunning: connection b's applier was stopped
// by the operator before the hold. The lock stops and records only the
// default one; killing the lock's connection (the holder died) leaves it
// stopped; RestartAppliers from a new connection starts it, and b stays
// stopped.
func TestRestartAppliersOnlyThoseRunning(t *testing.T) {
	r := replication(t, mariadb.ReplicationOptions{Connections: []string{"", "b"}})
	if err := r.Replica.Exec("STOP SLAVE 'b' SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	waitThreads(t, r, "b", "Yes", "No")
	o := opts(r.Replica, contract.LockReplica)
	if running, err := RunningAppliers(context.Background(), o); err != nil || !slices.Equal(running, []string{""}) {
		t.Fatalf("running appliers %q (%v), want only the default connection", running, err)
	}
	l, info := acquire(t, o)
	if !slices.Equal(info.Replication.StoppedAppliers, []string{""}) {
		t.Fatalf("stopped appliers %q, want only the default connection", info.Replication.StoppedAppliers)
	}
	if len(info.Replication.Channels) != 2 {
		t.Fatalf("channels %+v, want two", info.Replication.Channels)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := KillConnection(ctx, o, l.ConnectionID()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if st := slaveStatus(t, r, ""); st["Slave_SQL_Running"] != "No" {
		t.Fatalf("the applier restarted by itself when the connection died (%q): then this mode would need no fail-safe", st["Slave_SQL_Running"])
	}
	if err := RestartAppliers(ctx, o, info.Replication.StoppedAppliers); err != nil {
		t.Fatal(err)
	}
	waitThreads(t, r, "", "Yes", "Yes")
	if st := slaveStatus(t, r, "b"); st["Slave_SQL_Running"] != "No" {
		t.Errorf("connection b's applier, stopped before the hold, is now %q", st["Slave_SQL_Running"])
	}
	// Idempotent, and Release on the dead connection still succeeds.
	if err := RestartAppliers(ctx, o, info.Replication.StoppedAppliers); err != nil {
		t.Errorf("second RestartAppliers: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Errorf("release after the connection was killed: %v", err)
	}
	waitThreads(t, r, "", "Yes", "Yes")
	waitThreads(t, r, "b", "Yes", "No")
}

// TestReplicaModeWaitsOutReplicatedTempTable: a statement-based temporary
// table lives in the applier; a copy taken while it is open would break
// replication on restore. The lock keeps trying within --lock-wait, gives
// up with exit 5 and the applier running, and succeeds once it is dropped.
func TestReplicaModeWaitsOutReplicatedTempTable(t *testing.T) {
	r := replication(t, mariadb.ReplicationOptions{})
	pdb := primaryDB(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	session, err := pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	for _, s := range []string{"SET SESSION binlog_format = 'STATEMENT'", "CREATE TEMPORARY TABLE d0.tmp (v INT)", "INSERT INTO d0.tmp VALUES (1)"} {
		if _, err := session.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	caughtUp(t, r)
	o := opts(r.Replica, contract.LockReplica)
	o.LockWait = time.Second
	start := time.Now()
	l, _, err := Acquire(ctx, o)
	if err == nil {
		l.Release(ctx)
		t.Fatal("replica mode held with a replicated temporary table open")
	}
	if !errors.Is(err, contract.ErrLockWait) || !strings.Contains(err.Error(), "temporary table") {
		t.Fatalf("err = %v, want a lock wait (exit 5) naming the temporary table", err)
	}
	if d := time.Since(start); d > o.LockWait+3*time.Second {
		t.Errorf("gave up after %v with --lock-wait %v", d, o.LockWait)
	}
	waitThreads(t, r, "", "Yes", "Yes")

	if _, err := session.ExecContext(ctx, "DROP TEMPORARY TABLE d0.tmp"); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, r)
	l, _ = acquire(t, opts(r.Replica, contract.LockReplica))
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	waitThreads(t, r, "", "Yes", "Yes")
}

// TestReplicationCoordinatesUnderGlobalLocks: every mode reports the
// replica's coordinates; the global locks stop no applier.
func TestReplicationCoordinatesUnderGlobalLocks(t *testing.T) {
	r := replication(t, mariadb.ReplicationOptions{})
	if err := r.Primary().Exec("INSERT INTO d0.t (v) VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, r)
	for _, mode := range []string{contract.LockFTWRL, contract.LockBackupStage} {
		t.Run(mode, func(t *testing.T) {
			l, info := acquire(t, opts(r.Replica, mode))
			st := slaveStatus(t, r, "")
			if info.Replication == nil || len(info.Replication.Channels) != 1 {
				t.Fatalf("%s on a replica: replication %+v, want one channel", mode, info.Replication)
			}
			c := info.Replication.Channels[0]
			if c.GTID != st["Gtid_Slave_Pos"] || strconv.FormatUint(c.SourceLogPos, 10) != st["Exec_Master_Log_Pos"] || c.SQLRunning != "Yes" {
				t.Errorf("channel %+v, status gtid %s pos %s", c, st["Gtid_Slave_Pos"], st["Exec_Master_Log_Pos"])
			}
			if len(info.Replication.StoppedAppliers) != 0 {
				t.Errorf("%s stopped appliers %q", mode, info.Replication.StoppedAppliers)
			}
			if err := l.Release(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
	m, _ := server(t)
	_, info := acquire(t, opts(m, contract.LockBackupStage))
	if info.Replication != nil {
		t.Errorf("a server that is not a replica reports replication %+v", info.Replication)
	}
}

// TestReplicaModeSourceWritersNeverStall writes on the primary in a loop
// through three hold cycles and records each INSERT's latency. Nothing is
// locked on the source, so its max stall is an fsync on a shared disk;
// readers on the replica answer during the hold.
func TestReplicaModeSourceWritersNeverStall(t *testing.T) {
	r := replication(t, mariadb.ReplicationOptions{})
	pdb := primaryDB(t, r)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var maxStall time.Duration
	var writes int
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		maxStall, writes, werr = writeLoop(pdb, "d0.t", stop)
	}()
	for i := 0; i < 3; i++ {
		l, _ := acquire(t, opts(r.Replica, contract.LockReplica))
		time.Sleep(300 * time.Millisecond)
		replicaRows(t, r, "d0")
		if err := l.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	t.Logf("source: %d writes over 3 replica-mode cycles, max stall %v", writes, maxStall)
	if maxStall > 3*time.Second {
		t.Errorf("a source writer stalled %v during replica-mode holds", maxStall)
	}
	caughtUp(t, r)
}

// writeLoop inserts into table until stop, returning the longest single
// INSERT and the count. Each INSERT is bounded to 10 s.
func writeLoop(db *sql.DB, table string, stop <-chan struct{}) (time.Duration, int, error) {
	var maxStall time.Duration
	n := 0
	for {
		select {
		case <-stop:
			return maxStall, n, nil
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		_, err := db.ExecContext(ctx, "INSERT INTO "+table+" (v) VALUES (1)")
		cancel()
		if err != nil {
			return maxStall, n, err
		}
		maxStall = max(maxStall, time.Since(start))
		n++
	}
}

// TestReplicaModeDoesNotStopPrivilegedLocalWriters pins down why `auto`
// never picks replica mode: read_only lets a user with READ_ONLY ADMIN
// (root has it) write on the replica while the applier is stopped, where
// FTWRL blocks the same write.
func TestReplicaModeDoesNotStopPrivilegedLocalWriters(t *testing.T) {
	r := replication(t, mariadb.ReplicationOptions{})
	rdb, err := r.Replica.DB()
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	l, _ := acquire(t, opts(r.Replica, contract.LockReplica))
	if err := <-startWrite(rdb, 3*time.Second, "INSERT INTO d0.t (v) VALUES (99)"); err != nil {
		t.Fatalf("a privileged local write on the read-only replica during replica mode: %v (expected to go through)", err)
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	l, _ = acquire(t, opts(r.Replica, contract.LockFTWRL))
	defer l.Release(context.Background())
	if err := <-startWrite(rdb, 500*time.Millisecond, "INSERT INTO d0.t (v) VALUES (98)"); err == nil {
		t.Fatal("FTWRL did not block the same local write")
	}
}
