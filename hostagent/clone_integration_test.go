package main

// Integration tests of `hostagent clone`: a real mariadbd primary (and a
// replica of it) with its datadir on a loop XFS "EBS volume", an
// application-consistent snapshot of it (the writes locked or the applier
// stopped, the filesystem frozen and copied), attached as vol-….img, cloned
// into a replica that catches up with the primary.

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/fixture"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

// cloneSnapshot is a snapshot of a source volume, attached as a restored volume.
type cloneSnapshot struct {
	volume string
	loop   *fixture.Loop
	// gtid is the coordinates the snapshot was taken at: the primary's
	// gtid_binlog_pos, or a replica's gtid_slave_pos.
	gtid       string
	binlogFile string
	binlogPos  uint64
}

// sourceVolume is a loop XFS filesystem for a source's datadir.
func sourceVolume(t *testing.T) *fixture.LoopFS {
	t.Helper()
	fixture.RequireLoopFS(t, "xfs")
	fixture.SkipUnlessMariaDB(t)
	return sourceFS(t, "xfs")
}

// snapshotPrimary takes the snapshot under FLUSH TABLES WITH READ LOCK, as
// freeze does, reading the binlog coordinates under the lock.
func snapshotPrimary(t *testing.T, db *sql.DB, src *fixture.LoopFS) cloneSnapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
		t.Fatal(err)
	}
	var snap cloneSnapshot
	if err := conn.QueryRowContext(ctx, "SHOW MASTER STATUS").Scan(&snap.binlogFile, &snap.binlogPos, new(string), new(string)); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&snap.gtid); err != nil {
		t.Fatal(err)
	}
	snap.volume, snap.loop = attachCopy(t, src)
	if _, err := conn.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		t.Fatal(err)
	}
	return snap
}

// snapshotReplica takes the snapshot with the replica's applier stopped,
// as lock mode replica does, reading gtid_slave_pos while it is stopped.
func snapshotReplica(t *testing.T, r *mariadb.Replication, src *fixture.LoopFS) cloneSnapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Replica.Exec("STOP SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	if err := r.WaitThreads(ctx, "", "", "No"); err != nil {
		t.Fatal(err)
	}
	db, err := r.Replica.DB()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var snap cloneSnapshot
	if err := db.QueryRowContext(ctx, "SELECT @@gtid_slave_pos").Scan(&snap.gtid); err != nil {
		t.Fatal(err)
	}
	snap.volume, snap.loop = attachCopy(t, src)
	if err := r.Replica.Exec("START SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	return snap
}

// cloneWriter inserts into shop.t on the primary until paused.
type cloneWriter struct {
	stop   chan struct{}
	done   sync.WaitGroup
	rows   atomic.Int64
	errMsg atomic.Value
}

func startWriter(t *testing.T, db *sql.DB) *cloneWriter {
	t.Helper()
	for _, s := range []string{"CREATE DATABASE IF NOT EXISTS shop",
		"CREATE TABLE shop.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(100)) ENGINE=InnoDB"} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	w := &cloneWriter{stop: make(chan struct{})}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := db.ExecContext(ctx, "INSERT INTO shop.t (v, pad) VALUES (?, REPEAT('p', 80))", i)
			cancel()
			if err != nil {
				w.errMsg.Store(err.Error())
				return
			}
			w.rows.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	t.Cleanup(w.pause)
	return w
}

func (w *cloneWriter) pause() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.done.Wait()
}

// cloneTarget is the "target instance": where the clone is mounted, its
// server's run dir and option files, and a state dir.
type cloneTarget struct {
	t          *testing.T
	dir        string
	mount      string
	run        string
	stateDir   string
	defaults   string // --mysql-defaults-file
	replFile   string // --replication-defaults-file
	port       int
	socket     string
	pidFile    string
	datadirRel string
}

func newCloneTarget(t *testing.T, password string) *cloneTarget {
	t.Helper()
	dir := searchableTempDir(t, "qc") // as /var/lib is
	ct := &cloneTarget{t: t, dir: dir, mount: filepath.Join(dir, "mnt"), run: filepath.Join(dir, "run"),
		stateDir: filepath.Join(dir, "s"), datadirRel: "db"}
	ct.socket, ct.pidFile = filepath.Join(ct.run, "c.sock"), filepath.Join(ct.run, "c.pid")
	mysqlDir(t, ct.run)
	mysqlDir(t, filepath.Join(ct.run, "tmp"))
	ct.port = freeTCPPort(t)
	ct.writeFiles(password)
	t.Cleanup(func() {
		ct.stopServer()
		if err := unix.Unmount(ct.mount, 0); err == nil {
			t.Log("unmounted the clone")
		}
		ct.requireNothingLeft(false)
		os.RemoveAll(dir)
	})
	return ct
}

func (ct *cloneTarget) writeFiles(password string) {
	datadir := filepath.Join(ct.mount, ct.datadirRel)
	cnf := fmt.Sprintf(`[mysqld]
socket=%s
pid-file=%s
log-error=%s
port=%d
bind-address=127.0.0.1
log-bin=%s
log-slave-updates=1
innodb-buffer-pool-size=32M
innodb-log-file-size=8M
skip-name-resolve
tmpdir=%s
[client]
socket=%s
user=root
`, ct.socket, ct.pidFile, filepath.Join(ct.run, "c.err"), ct.port, filepath.Join(datadir, "binlog"), filepath.Join(ct.run, "tmp"), ct.socket)
	ct.defaults = filepath.Join(ct.dir, "my.cnf")
	ct.replFile = filepath.Join(ct.dir, "repl.cnf")
	writeFile0600(ct.t, ct.defaults, cnf)
	writeFile0600(ct.t, ct.replFile, fmt.Sprintf("[quiesce-replication]\nuser=repl\npassword=%s\n", password))
}

func writeFile0600(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (ct *cloneTarget) args(snap cloneSnapshot, source *mariadb.Server, extra ...string) []string {
	return append([]string{"clone", "--volume", snap.volume, "--mount", ct.mount,
		"--source-host", "127.0.0.1", "--source-port", strconv.Itoa(source.Port),
		"--replication-defaults-file", ct.replFile, "--mysql-defaults-file", ct.defaults,
		"--state-dir", ct.stateDir, "--device-wait", "0s", "--timeout", "2m"}, extra...)
}

// clone runs the binary and decodes its one report.
func (ct *cloneTarget) clone(args ...string) (result, contract.CloneReport) {
	ct.t.Helper()
	r := runAgent(ct.t, 3*time.Minute, nil, args...)
	var rep contract.CloneReport
	decodeOne(ct.t, r.stdout, &rep) // always one CloneReport, also for bad input
	if rep.OK != (r.code == 0) || rep.OK != (len(rep.Problems) == 0) || rep.LeftRunning != rep.OK {
		ct.t.Errorf("exit %d with ok=%v, left_running=%v and problems %q", r.code, rep.OK, rep.LeftRunning, rep.Problems)
	}
	return r, rep
}

// serverPID is the clone server's pid from its pid file (0 if none).
func (ct *cloneTarget) serverPID() int {
	b, err := os.ReadFile(ct.pidFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// stopServer stops the clone's server (which hostagent started and left
// running) by its PID: SIGTERM, a bounded wait, SIGKILL.
func (ct *cloneTarget) stopServer() {
	for _, pid := range serversUnder(ct.mount) {
		syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 600 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			syscall.Kill(pid, syscall.SIGKILL)
			time.Sleep(500 * time.Millisecond)
		}
	}
}

// requireCloneFailed requires the exit code and a problem that mentions want.
func requireCloneFailed(t *testing.T, r result, rep contract.CloneReport, code contract.ExitCode, want string) {
	t.Helper()
	if r.code != code || !strings.Contains(strings.Join(rep.Problems, " "), want) {
		t.Fatalf("exit %d, problems %q", r.code, rep.Problems)
	}
}

// requireUndone: the clone left nothing behind (requireNothingLeft) and the
// snapshot's volume is free again.
func (ct *cloneTarget) requireUndone(snap cloneSnapshot, mountPointRemoved bool) {
	ct.t.Helper()
	ct.requireNothingLeft(mountPointRemoved)
	if snap.loop.Busy() {
		ct.t.Error("the volume is still in use after the clone")
	}
}

// requireNothingLeft: no mount on the mount point, no server on it, no
// journal or volume lock; the mount point removed (clone created it).
func (ct *cloneTarget) requireNothingLeft(mountPointRemoved bool) {
	ct.t.Helper()
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), ct.mount) {
		ct.t.Errorf("still mounted at %s:\n%s", ct.mount, grepLines(string(mounts), ct.mount))
		unix.Unmount(ct.mount, unix.MNT_DETACH)
	}
	if pids := serversUnder(ct.mount); len(pids) > 0 {
		ct.t.Errorf("servers still running on the clone: %v", pids)
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(ct.stateDir, "restore", "run-*.json")); len(left) > 0 {
		ct.t.Errorf("journals left: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(ct.stateDir, "restore", "vol-*.lock")); len(left) > 0 {
		ct.t.Errorf("volume locks left: %v", left)
	}
	if _, err := os.Stat(ct.mount); mountPointRemoved && !os.IsNotExist(err) {
		ct.t.Errorf("mount point %s not removed (%v)", ct.mount, err)
	}
}

func (ct *cloneTarget) db() *sql.DB {
	ct.t.Helper()
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.Timeout = "root", "unix", ct.socket, 2*time.Second
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		ct.t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	ct.t.Cleanup(func() { db.Close() })
	return db
}

// startPrimary starts a primary (server_id 1) on a loop volume, with the
// replication account, reachable over loopback TCP.
func startPrimary(t *testing.T) (*fixture.LoopFS, *mariadb.Server, *sql.DB) {
	t.Helper()
	src := sourceVolume(t)
	p := fixture.StartMariaDBForTest(t, mariadb.Options{DataDir: filepath.Join(src.Mount, "db"), TCP: true,
		StartTimeout: 90 * time.Second, ExtraArgs: []string{"--server-id=1"}})
	if err := p.Exec("CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl-secret'",
		"GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'"); err != nil {
		t.Fatal(err)
	}
	db, err := p.DB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return src, p, db
}

// quietPrimarySnapshot is where most clone tests start: a primary on a loop
// XFS volume, written to and quiet again, an application-consistent snapshot
// of it attached, and a clone target whose replication password is password.
func quietPrimarySnapshot(t *testing.T, password string) (*mariadb.Server, cloneSnapshot, *cloneTarget) {
	t.Helper()
	src, primary, pdb := startPrimary(t)
	startWriter(t, pdb).pause()
	snap := snapshotPrimary(t, pdb, src)
	return primary, snap, newCloneTarget(t, password)
}

// withFlag returns a copy of args with the value after flag replaced.
func withFlag(args []string, flag, value string) []string {
	out := append([]string(nil), args...)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == flag {
			out[i+1] = value
		}
	}
	return out
}

// requireCaughtUp waits until the clone has applied all the primary wrote
// and compares them: CHECKSUM TABLE and GTID positions.
func requireCaughtUp(t *testing.T, primary, clone *sql.DB) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pos, caughtUp, err := mariadb.CatchUp(ctx, primary, clone)
	if err != nil {
		t.Fatalf("clone: %v", err)
	}
	var slavePos string
	if err := clone.QueryRowContext(ctx, "SELECT @@gtid_slave_pos").Scan(&slavePos); err != nil {
		t.Fatal(err)
	}
	if slavePos != pos {
		t.Errorf("clone's gtid_slave_pos %q, primary's gtid_binlog_pos %q", slavePos, pos)
	}
	sum := func(db *sql.DB) (n int64) {
		var name string
		if err := db.QueryRowContext(ctx, "CHECKSUM TABLE shop.t").Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var rowsP, rowsC int
	primary.QueryRowContext(ctx, "SELECT COUNT(*) FROM shop.t").Scan(&rowsP)
	clone.QueryRowContext(ctx, "SELECT COUNT(*) FROM shop.t").Scan(&rowsC)
	if a, b := sum(primary), sum(clone); a != b || rowsP != rowsC {
		t.Errorf("CHECKSUM TABLE shop.t: primary %d (%d rows), clone %d (%d rows)", a, rowsP, b, rowsC)
	}
	return caughtUp
}

func requireReplicating(t *testing.T, r result, rep contract.CloneReport) {
	t.Helper()
	if r.code != 0 || !rep.OK || rep.Replica == nil {
		t.Fatalf("exit %d, problems %q\nstdout: %s\nstderr: %s", r.code, rep.Problems, r.stdout, r.stderr)
	}
	if rep.Replica.IORunning != "Yes" || rep.Replica.SQLRunning != "Yes" || !rep.ReadOnly || rep.ServerID != 201 || len(rep.Notes) == 0 {
		t.Errorf("report %+v, replica %+v", rep, *rep.Replica)
	}
}

// A snapshot of a primary clones into a replica of that primary: it starts
// from the binlog position of the snapshot and catches up with every write
// made since, while the cloneWriter keeps writing.
func TestCloneFromPrimarySnapshot(t *testing.T) {
	src, primary, pdb := startPrimary(t)
	w := startWriter(t, pdb)
	time.Sleep(300 * time.Millisecond)
	snap := snapshotPrimary(t, pdb, src)
	ct := newCloneTarget(t, "repl-secret")
	start := time.Now()
	r, rep := ct.clone(ct.args(snap, primary, "--source-gtid", snap.gtid, "--server-id", "201", "--source-server-id", "1")...)
	requireReplicating(t, r, rep)
	replicating := time.Since(start)
	if rep.Coordinates.Mode != contract.CloneByGTID || rep.Coordinates.GTID != snap.gtid || rep.DataDir != filepath.Join(ct.mount, "db") {
		t.Errorf("report %+v", rep)
	}
	time.Sleep(300 * time.Millisecond) // the cloneWriter goes on
	w.pause()
	if msg := w.errMsg.Load(); msg != nil {
		t.Fatalf("cloneWriter: %v", msg)
	}
	caughtUp := requireCaughtUp(t, pdb, ct.db())
	t.Logf("set → replicating in %v (hostagent %v ms, start %v ms); caught up %v later; %d rows written", replicating,
		rep.DurationMS, rep.TimingsMS["start"], caughtUp, w.rows.Load())
}

// A snapshot of a replica clones into a sibling replica of the same source,
// from the replica's own source coordinates (gtid_slave_pos); the original
// replica keeps replicating.
func TestCloneFromReplicaSnapshot(t *testing.T) {
	fixture.SkipUnlessMariaDB(t)
	src := sourceVolume(t)
	rp := fixture.StartReplicationForTest(t, mariadb.ReplicationOptions{ReplicaDataDir: filepath.Join(src.Mount, "db"), StartTimeout: 90 * time.Second})
	pdb, err := rp.Primary().DB()
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	w := startWriter(t, pdb)
	time.Sleep(300 * time.Millisecond)
	snap := snapshotReplica(t, rp, src)
	ct := newCloneTarget(t, "repl-secret")
	r, rep := ct.clone(ct.args(snap, rp.Primary(), "--source-gtid", snap.gtid, "--server-id", "201",
		"--source-server-id", "100", "--source-server-id", "1")...)
	requireReplicating(t, r, rep)
	if !containsAll(rep.Removed, "master.info", "relay-log.info") {
		t.Errorf("removed %q: want the replica's old replication state", rep.Removed)
	}
	time.Sleep(300 * time.Millisecond)
	w.pause()
	requireCaughtUp(t, pdb, ct.db())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rp.WaitCaughtUp(ctx); err != nil {
		t.Fatalf("the original replica stopped replicating: %v", err)
	}
	if st, err := rp.SlaveStatus(ctx, ""); err != nil || st["Slave_IO_Running"] != "Yes" {
		t.Errorf("original replica IO thread %q (%v)", st["Slave_IO_Running"], err)
	}
}

func containsAll(have []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}

// Wrong replication credentials: the receiver is refused; exit 6 with the
// server's own error, and the clone is undone (server stopped, unmounted).
func TestCloneWrongCredentialsUndone(t *testing.T) {
	primary, snap, ct := quietPrimarySnapshot(t, "not-the-password")
	r, rep := ct.clone(ct.args(snap, primary, "--source-log-file", snap.binlogFile,
		"--source-log-pos", strconv.FormatUint(snap.binlogPos, 10), "--server-id", "201")...)
	if r.code != contract.ExitVerifyFailed || rep.Replica == nil || rep.Replica.LastIOErrno != 1045 {
		t.Fatalf("exit %d, replica %+v, problems %q\n%s", r.code, rep.Replica, rep.Problems, r.stderr)
	}
	if !strings.Contains(strings.Join(rep.Problems, " "), "Access denied") {
		t.Errorf("problems %q: want the server's error", rep.Problems)
	}
	if strings.Contains(r.stdout+r.stderr, "not-the-password") {
		t.Error("the password is in the output")
	}
	if rep.Coordinates.Mode != contract.CloneByFilePos {
		t.Errorf("coordinates %+v", rep.Coordinates)
	}
	ct.requireUndone(snap, true)
}

// A mount point that is not empty, or has something mounted on it, is
// refused (exit 2) before anything is mounted.
func TestCloneRefusesUsedMountPoint(t *testing.T) {
	primary, snap, ct := quietPrimarySnapshot(t, "repl-secret")
	mysqlDir(t, ct.mount)
	writeFile0600(t, filepath.Join(ct.mount, "precious"), "x")
	r, rep := ct.clone(ct.args(snap, primary, "--source-gtid", snap.gtid)...)
	requireCloneFailed(t, r, rep, contract.ExitUsage, "not empty")
	os.Remove(filepath.Join(ct.mount, "precious"))
	if err := unix.Mount("tmpfs", ct.mount, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	r, rep = ct.clone(ct.args(snap, primary, "--source-gtid", snap.gtid)...)
	unix.Unmount(ct.mount, 0)
	requireCloneFailed(t, r, rep, contract.ExitUsage, "mounted there already")
	ct.requireUndone(snap, false)
}

// A clone whose running server_id is the source's (the built-in start
// without --server-id: MariaDB's default 1, the primary's) is refused with
// exit 2 and undone before replication is configured.
func TestCloneRefusesSourceServerID(t *testing.T) {
	primary, snap, ct := quietPrimarySnapshot(t, "repl-secret")
	r, rep := ct.clone(ct.args(snap, primary, "--source-gtid", snap.gtid, "--source-server-id", "1")...)
	if r.code != contract.ExitUsage || rep.ServerID != 1 || !strings.Contains(strings.Join(rep.Problems, " "), "server_id is 1") {
		t.Fatalf("exit %d, server_id %d, problems %q", r.code, rep.ServerID, rep.Problems)
	}
	if rep.Replica != nil {
		t.Errorf("replication was configured: %+v", rep.Replica)
	}
	ct.requireNothingLeft(true)
}

// The target's own server, started and stopped by the operator's commands:
// clone sets its server_id at run time (and says so) and makes it a replica.
func TestCloneWithStartCommand(t *testing.T) {
	src, primary, pdb := startPrimary(t)
	w := startWriter(t, pdb)
	snap := snapshotPrimary(t, pdb, src)
	ct := newCloneTarget(t, "repl-secret")
	mariadbd, err := exec.LookPath("mariadbd")
	if err != nil {
		mariadbd = "/usr/sbin/mariadbd"
	}
	// The "service": a server started from the operator's own option file.
	start := fmt.Sprintf("setsid %s --defaults-file=%s --datadir=%s --user=mysql --skip-slave-start </dev/null >/dev/null 2>&1 &",
		mariadbd, ct.defaults, filepath.Join(ct.mount, "db"))
	stop := fmt.Sprintf("pid=$(cat %s) && kill $pid && while kill -0 $pid 2>/dev/null; do sleep 0.1; done", ct.pidFile)
	r, rep := ct.clone(ct.args(snap, primary, "--source-gtid", snap.gtid, "--server-id", "201", "--source-server-id", "1",
		"--start-command", start, "--stop-command", stop)...)
	requireReplicating(t, r, rep)
	if len(rep.Notes) != 2 || !strings.Contains(rep.Notes[0], "server_id=201") || !strings.Contains(rep.Notes[1], "fstab") {
		t.Errorf("notes %q: want the run-time server_id named", rep.Notes)
	}
	w.pause()
	requireCaughtUp(t, pdb, ct.db())
}

// A source that cannot be reached is waited on until --timeout, then the
// clone fails (exit 6) with the receiver's last error, and is undone.
func TestCloneUnreachableSourceTimesOut(t *testing.T) {
	primary, snap, ct := quietPrimarySnapshot(t, "repl-secret")
	args := ct.args(snap, primary, "--source-gtid", snap.gtid, "--server-id", "201")
	args = withFlag(args, "--source-port", strconv.Itoa(freeTCPPort(t))) // nobody listens there
	r, rep := ct.clone(withFlag(args, "--timeout", "12s")...)
	if r.code != contract.ExitVerifyFailed || !strings.Contains(strings.Join(rep.Problems, " "), "within --timeout") ||
		rep.Replica == nil || rep.Replica.LastIOErrno == 0 {
		t.Fatalf("exit %d, replica %+v, problems %q", r.code, rep.Replica, rep.Problems)
	}
	ct.requireNothingLeft(true)
}

// A clone killed with SIGKILL while it waits leaves a running server and a
// mount behind; the next clone of the set undoes them first (its journal),
// then clones.
func TestCloneAfterKilledRun(t *testing.T) {
	primary, snap, ct := quietPrimarySnapshot(t, "repl-secret")
	args := ct.args(snap, primary, "--source-gtid", snap.gtid, "--server-id", "201")
	b := startBackground(t, withFlag(args, "--source-port", strconv.Itoa(freeTCPPort(t)))...)
	b.waitFor(t, "the clone's server ran", 60*time.Second, 50*time.Millisecond, func() bool {
		return len(serversUnder(ct.mount)) > 0 && strings.Contains(readMountinfo(), ct.mount)
	})
	time.Sleep(time.Second) // into the wait for replication
	b.cmd.Process.Signal(syscall.SIGKILL)
	b.exit(t, time.Minute)
	if len(serversUnder(ct.mount)) == 0 {
		t.Fatal("the killed run's server is gone already: nothing to clean up")
	}
	r, rep := ct.clone(args...)
	requireReplicating(t, r, rep)
	if pids := serversUnder(ct.mount); len(pids) != 1 {
		t.Errorf("servers on the clone: %v, want exactly the new one", pids)
	}
}

func readMountinfo() string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	return string(b)
}

// A server that cannot start on the clone (here an option it refuses) is a
// failed clone (exit 6) with the server's own words; everything is undone.
func TestCloneServerThatCannotStart(t *testing.T) {
	primary, snap, ct := quietPrimarySnapshot(t, "repl-secret")
	cnf, err := os.ReadFile(ct.defaults)
	if err != nil {
		t.Fatal(err)
	}
	writeFile0600(t, ct.defaults, strings.Replace(string(cnf), "[mysqld]\n", "[mysqld]\nno-such-option-here=1\n", 1))
	r, rep := ct.clone(ct.args(snap, primary, "--source-gtid", snap.gtid, "--server-id", "201")...)
	requireCloneFailed(t, r, rep, contract.ExitVerifyFailed, "no-such-option-here")
	ct.requireUndone(snap, true)
}

// SIGTERM while the clone waits for replication: exit 1 (interrupted, not a
// verdict on the set), one report, and everything undone.
func TestCloneSIGTERMUndone(t *testing.T) {
	primary, snap, ct := quietPrimarySnapshot(t, "repl-secret")
	args := ct.args(snap, primary, "--source-gtid", snap.gtid, "--server-id", "201")
	b := startBackground(t, withFlag(args, "--source-port", strconv.Itoa(freeTCPPort(t)))...)
	b.waitFor(t, "the clone's server ran", 60*time.Second, 50*time.Millisecond, func() bool {
		return len(serversUnder(ct.mount)) > 0
	})
	time.Sleep(time.Second)
	b.cmd.Process.Signal(syscall.SIGTERM)
	if code := b.exit(t, time.Minute); code != int(contract.ExitFailed) {
		t.Fatalf("exit %d, want 1\n%s", code, b.errb.String())
	}
	var rep contract.CloneReport
	decodeOne(t, b.out.String(), &rep)
	if rep.OK || rep.LeftRunning || !strings.Contains(strings.Join(rep.Problems, " "), "interrupted by terminated") {
		t.Errorf("report %+v", rep)
	}
	ct.requireNothingLeft(true)
}

// A two-volume set (datadir on XFS, binary log on ext4), cloned with the
// volumes paired to their mount points in order. The clone is mounted
// elsewhere than the source here (one machine plays both), so the binlog
// index on the second volume names the source's live files: it must be
// pointed at the clone's, or the clone would append to the primary's binlog.
func TestCloneTwoVolumeSet(t *testing.T) {
	fixture.RequireLoopFS(t, "ext4")
	data := sourceVolume(t)
	logs := sourceFS(t, "ext4")
	binlogDir := filepath.Join(logs.Mount, "binlog")
	mysqlDir(t, binlogDir)
	primary := fixture.StartMariaDBForTest(t, mariadb.Options{DataDir: filepath.Join(data.Mount, "db"), TCP: true, StartTimeout: 90 * time.Second,
		ExtraArgs: []string{"--server-id=1", "--log-bin=" + filepath.Join(binlogDir, "bin")}})
	if err := primary.Exec("CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl-secret'", "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'"); err != nil {
		t.Fatal(err)
	}
	pdb, err := primary.DB()
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	w := startWriter(t, pdb)
	time.Sleep(200 * time.Millisecond)

	// Both volumes under one lock, as freeze takes a multi-volume set.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
		t.Fatal(err)
	}
	var gtid string
	if err := conn.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&gtid); err != nil {
		t.Fatal(err)
	}
	volData, _ := attachCopy(t, data)
	volLogs, _ := attachCopy(t, logs)
	if _, err := conn.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	sourceBinlogs := binlogSizes(t, binlogDir)

	logsDir, err := os.MkdirTemp("", "qcl")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(logsDir, 0o711)
	logsMount := filepath.Join(logsDir, "logs")
	t.Cleanup(func() { // after the target's cleanup stopped the server
		unix.Unmount(logsMount, 0)
		os.RemoveAll(logsDir)
	})
	ct := newCloneTarget(t, "repl-secret")
	cnf, _ := os.ReadFile(ct.defaults)
	writeFile0600(t, ct.defaults, strings.Replace(string(cnf), "log-bin="+filepath.Join(ct.mount, "db", "binlog"), "log-bin="+filepath.Join(logsMount, "binlog", "bin"), 1))
	r, rep := ct.clone("clone", "--volume", volData, "--mount", ct.mount, "--volume", volLogs, "--mount", logsMount,
		"--source-host", "127.0.0.1", "--source-port", strconv.Itoa(primary.Port), "--replication-defaults-file", ct.replFile,
		"--mysql-defaults-file", ct.defaults, "--state-dir", ct.stateDir, "--device-wait", "0s", "--timeout", "2m",
		"--source-gtid", gtid, "--server-id", "201", "--source-server-id", "1")
	requireReplicating(t, r, rep)
	if len(rep.Mounts) != 2 || rep.Mounts[1] != logsMount {
		t.Errorf("mounts %q", rep.Mounts)
	}
	w.pause()
	requireCaughtUp(t, pdb, ct.db())
	idx, _ := os.ReadFile(filepath.Join(logsMount, "binlog", "bin.index"))
	if strings.Contains(string(idx), logs.Mount) {
		t.Errorf("the clone's binlog index still names the source's files:\n%s", idx)
	}
	for name, size := range binlogSizes(t, binlogDir) {
		if old, ok := sourceBinlogs[name]; ok && old > size {
			t.Errorf("the primary's %s shrank", name)
		}
	}
	if _, err := os.Stat(filepath.Join(binlogDir, "bin.index")); err != nil {
		t.Errorf("the primary's binlog index: %v", err)
	}
}

func binlogSizes(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	files, _ := filepath.Glob(filepath.Join(dir, "bin.[0-9]*"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			out[filepath.Base(f)] = st.Size()
		}
	}
	return out
}
