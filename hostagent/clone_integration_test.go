package main

// Integration tests of `hostagent clone`: a real mariadbd primary (and a
// replica of it) with its datadir on a loop XFS "EBS volume", an
// application-consistent snapshot of it (the writes locked or the applier
// stopped, the filesystem frozen and copied), attached as vol-….img, cloned
// into a replica that catches up with the primary.

import (
	"bytes"
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

	"golang.org/x/sys/unix"

	"github.com/go-sql-driver/mysql"

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
	fs, err := fixture.NewLoopFSNamed(t.TempDir(), "xfs", 300, "source.img")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	return fs
}

// attachCopy freezes and copies src to vol-<hex>.img and attaches it.
func attachCopy(t *testing.T, src *fixture.LoopFS) (string, *fixture.Loop) {
	t.Helper()
	vol := fmt.Sprintf("vol-0%x", time.Now().UnixNano()&0xffffffffffff)
	image := filepath.Join(t.TempDir(), vol+".img")
	if err := fixture.SnapshotImage(src, image); err != nil {
		t.Fatal(err)
	}
	loop, err := fixture.AttachImage(image)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := loop.Detach(); err != nil {
			t.Errorf("detach %s: %v (still in use after clone?)", loop.Device, err)
		}
	})
	return vol, loop
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
	dir, err := os.MkdirTemp("", "qc")
	if err != nil {
		t.Fatal(err)
	}
	// Searchable by the server's user (mysql), as /var/lib is.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
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
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = contract.ExitCode(ee.ExitCode())
	} else if err != nil {
		ct.t.Fatalf("hostagent %v: %v", args, err)
	}
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

// requireCaughtUp waits until the clone has applied all the primary wrote
// and compares them: CHECKSUM TABLE and GTID positions.
func requireCaughtUp(t *testing.T, primary, clone *sql.DB) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	var pos string
	if err := primary.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
		t.Fatal(err)
	}
	var res int
	if err := clone.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 50)", pos).Scan(&res); err != nil || res != 0 {
		t.Fatalf("clone did not reach the primary's %s: %d %v", pos, res, err)
	}
	caughtUp := time.Since(start)
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
	src, primary, pdb := startPrimary(t)
	startWriter(t, pdb).pause()
	snap := snapshotPrimary(t, pdb, src)
	ct := newCloneTarget(t, "not-the-password")
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
	ct.requireNothingLeft(true)
	if snap.loop.Busy() {
		t.Error("the volume is still in use")
	}
}

// A mount point that is not empty, or has something mounted on it, is
// refused (exit 2) before anything is mounted.
func TestCloneRefusesUsedMountPoint(t *testing.T) {
	src, primary, pdb := startPrimary(t)
	startWriter(t, pdb).pause()
	snap := snapshotPrimary(t, pdb, src)
	ct := newCloneTarget(t, "repl-secret")
	mysqlDir(t, ct.mount)
	writeFile0600(t, filepath.Join(ct.mount, "precious"), "x")
	r, rep := ct.clone(ct.args(snap, primary, "--source-gtid", snap.gtid)...)
	if r.code != contract.ExitUsage || !strings.Contains(strings.Join(rep.Problems, " "), "not empty") {
		t.Fatalf("exit %d, problems %q", r.code, rep.Problems)
	}
	os.Remove(filepath.Join(ct.mount, "precious"))
	if err := unix.Mount("tmpfs", ct.mount, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	r, rep = ct.clone(ct.args(snap, primary, "--source-gtid", snap.gtid)...)
	unix.Unmount(ct.mount, 0)
	if r.code != contract.ExitUsage || !strings.Contains(strings.Join(rep.Problems, " "), "mounted there already") {
		t.Fatalf("exit %d, problems %q", r.code, rep.Problems)
	}
	ct.requireNothingLeft(false)
	if snap.loop.Busy() {
		t.Error("the volume is in use after a refused clone")
	}
}
