package main

// Integration tests of `hostagent verify`: real loop XFS and ext4 "EBS
// volumes" holding a real mariadbd datadir, snapshotted (frozen and copied)
// while the server had crashed (kill -9), then attached as a loop device
// backed by vol-….img as a restored volume would be.

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/fixture"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

// snapshot is one restored volume made from a source filesystem.
type snapshot struct {
	volume     string
	loop       *fixture.Loop
	binlogFile string
	binlogPos  uint64
	gtid       string
}

// snapshotOptions shape the source before the snapshot is taken.
type snapshotOptions struct {
	// cleanShutdown stops the source slowly (innodb_fast_shutdown=0: every
	// page written to its tablespace) instead of kill -9.
	cleanShutdown bool
	// locked keeps the source running, as production does: FLUSH TABLES
	// WITH READ LOCK, position read under it, frozen copy, UNLOCK, and more
	// writes after (which the copy must not have).
	locked bool
	// beforeCopy runs on the stopped source's datadir, before the copy.
	beforeCopy func(t testing.TB, datadir string)
}

const snapDataDirRel = "db"

// makeSnapshot builds a source volume with a datadir at db/, writes data,
// notes the binlog position and GTID, stops the server (kill -9 unless
// cleanShutdown) and takes a frozen copy, attached as vol-<hex>.img.
func makeSnapshot(t testing.TB, fstype string, o snapshotOptions) snapshot {
	t.Helper()
	fixture.RequireLoopFS(t, fstype)
	fixture.SkipUnlessMariaDB(t)
	src := sourceFS(t, fstype)
	datadir := filepath.Join(src.Mount, snapDataDirRel)
	m, db := startSource(t, mariadb.Options{DataDir: datadir, StartTimeout: 90 * time.Second})
	defer m.Stop()
	defer db.Close()
	snap := snapshot{volume: fmt.Sprintf("vol-0%x", time.Now().UnixNano()&0xffffffffffff)}
	writeShop(t, db)
	var unlock func()
	if o.locked {
		unlock = lockSource(t, db)
	}
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&snap.binlogFile, &snap.binlogPos, new(string), new(string)); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&snap.gtid); err != nil {
		t.Fatal(err)
	}
	if !o.locked {
		stopSource(t, m, db, o.cleanShutdown)
	}
	if o.beforeCopy != nil {
		o.beforeCopy(t, datadir)
	}
	image := filepath.Join(t.TempDir(), snap.volume+".img")
	if err := fixture.SnapshotImage(src, image); err != nil {
		t.Fatal(err)
	}
	if o.locked {
		unlock()
		if _, err := db.Exec("INSERT INTO shop.orders VALUES (100000, 1, 'after the snapshot')"); err != nil {
			t.Fatal(err)
		}
	}
	loop, err := fixture.AttachImage(image)
	if err != nil {
		t.Fatal(err)
	}
	snap.loop = loop
	t.Cleanup(func() {
		if err := snap.loop.Detach(); err != nil {
			t.Errorf("detach %s: %v (still in use after verify?)", snap.loop.Device, err)
		}
	})
	return snap
}

func writeShop(t testing.TB, db *sql.DB) {
	t.Helper()
	stmts := []string{
		"CREATE DATABASE shop",
		"CREATE TABLE shop.orders (id INT PRIMARY KEY, amount INT NOT NULL, note VARCHAR(200), KEY (amount)) ENGINE=InnoDB",
		"CREATE TABLE shop.audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(50)) ENGINE=Aria",
		"CREATE VIEW shop.big AS SELECT * FROM shop.orders WHERE amount > 500",
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for i := 0; i < 40; i++ {
		var vals []string
		for j := 0; j < 100; j++ {
			id := i*100 + j
			vals = append(vals, fmt.Sprintf("(%d, %d, REPEAT('x', 150))", id, id%1000))
		}
		if _, err := db.Exec("INSERT INTO shop.orders VALUES " + strings.Join(vals, ",")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("INSERT INTO shop.audit (what) VALUES ('loaded')"); err != nil {
		t.Fatal(err)
	}
}

// lockSource takes FLUSH TABLES WITH READ LOCK on a connection of its own
// and returns its release.
func lockSource(t testing.TB, db *sql.DB) func() {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	return func() {
		if _, err := conn.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
			t.Error(err)
		}
		conn.Close()
	}
}

// startSource starts a source mariadbd and opens its pool; the caller stops
// both when its test needs them stopped (stopSource, or m.Stop and db.Close).
func startSource(t testing.TB, opts mariadb.Options) (*mariadb.Server, *sql.DB) {
	t.Helper()
	m, err := mariadb.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	db, err := m.DB()
	if err != nil {
		m.Stop()
		t.Fatal(err)
	}
	return m, db
}

func stopSource(t testing.TB, m *mariadb.Server, db *sql.DB, clean bool) {
	t.Helper()
	if clean {
		if _, err := db.Exec("SET GLOBAL innodb_fast_shutdown = 0"); err != nil {
			t.Fatal(err)
		}
		if err := m.Stop(); err != nil {
			t.Fatal(err)
		}
		return
	}
	db.SetMaxIdleConns(0) // close the pool's connections while the server still answers
	if err := syscall.Kill(m.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Exited():
	case <-time.After(20 * time.Second):
		t.Fatal("source mariadbd survived SIGKILL")
	}
}

// verifyEnv is one test's state dir and work-dir parent.
type verifyEnv struct {
	t        testing.TB
	stateDir string
	workDir  string
}

func newVerifyEnv(t testing.TB) *verifyEnv {
	t.Helper()
	dir, err := os.MkdirTemp("", "qv")
	if err != nil {
		t.Fatal(err)
	}
	// Searchable by the server's user, as /tmp is: the work dir inside is private.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	e := &verifyEnv{t: t, stateDir: filepath.Join(dir, "s"), workDir: filepath.Join(dir, "w")}
	if err := os.Mkdir(e.workDir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.requireNothingLeft()
		os.RemoveAll(dir)
	})
	return e
}

func (e *verifyEnv) args(snap snapshot, extra ...string) []string {
	return append([]string{"verify", "--volume", snap.volume, "--state-dir", e.stateDir, "--work-dir", e.workDir,
		"--device-wait", "0s", "--timeout", "3m"}, extra...)
}

func tagged(snap snapshot) []string {
	return []string{"--expect-binlog-file", snap.binlogFile, "--expect-binlog-pos", fmt.Sprint(snap.binlogPos),
		"--expect-gtid", snap.gtid}
}

// verify runs the binary and decodes its one report.
func (e *verifyEnv) verify(args ...string) (result, contract.VerifyReport) {
	e.t.Helper()
	r := runAgent(e.t, 5*time.Minute, nil, args...)
	var rep contract.VerifyReport
	decodeOne(e.t, r.stdout, &rep) // always one VerifyReport, also for bad input
	if rep.OK != (r.code == 0) || rep.OK != (len(rep.Problems) == 0) {
		e.t.Errorf("exit %d with ok=%v and problems %q", r.code, rep.OK, rep.Problems)
	}
	return r, rep
}

// requireNothingLeft: no mount, no work dir, no lock or journal, no server.
func (e *verifyEnv) requireNothingLeft() {
	e.t.Helper()
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), e.workDir) {
		e.t.Errorf("still mounted under %s:\n%s", e.workDir, grepLines(string(mounts), e.workDir))
		// Release them anyway, so the loop devices can be detached.
		for _, line := range strings.Split(grepLines(string(mounts), e.workDir), "\n") {
			if f := strings.Fields(line); len(f) > 4 {
				syscall.Unmount(f[4], syscall.MNT_DETACH)
			}
		}
	}
	if left, _ := os.ReadDir(e.workDir); len(left) > 0 {
		e.t.Errorf("work dir not removed: %v", left[0].Name())
	}
	if left, _ := filepath.Glob(filepath.Join(e.stateDir, "restore", "*.json")); len(left) > 0 {
		e.t.Errorf("journals left: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(e.stateDir, "restore", "vol-*.lock")); len(left) > 0 {
		e.t.Errorf("volume locks left: %v", left)
	}
	if pids := serversUnder(e.workDir); len(pids) > 0 {
		e.t.Errorf("servers still running on the work dir: %v", pids)
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// serversUnder lists processes whose command line names dir (a server we started).
func serversUnder(dir string) []int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("--datadir="+dir)) {
			continue
		}
		var pid int
		fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
		pids = append(pids, pid)
	}
	return pids
}

func writeChecks(t testing.TB, sql string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "checks.sql")
	if err := os.WriteFile(p, []byte(sql), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func requireProblem(t *testing.T, r result, rep contract.VerifyReport, want string) {
	t.Helper()
	if r.code != contract.ExitVerifyFailed || rep.OK {
		t.Fatalf("exit %d ok=%v, want 6; problems %q\nstderr: %s", r.code, rep.OK, rep.Problems, r.stderr)
	}
	for _, p := range rep.Problems {
		if strings.Contains(p, want) {
			return
		}
	}
	t.Fatalf("no problem mentions %q: %q", want, rep.Problems)
}
