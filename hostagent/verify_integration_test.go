package main

// Integration tests of `hostagent verify`: real loop XFS and ext4 "EBS
// volumes" holding a real mariadbd datadir, snapshotted (frozen and copied)
// while the server had crashed (kill -9), then attached as a loop device
// backed by vol-….img as a restored volume would be.

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
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
	var snap snapshot
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
	snap.volume, snap.loop = attachCopy(t, src)
	if o.locked {
		unlock()
		if _, err := db.Exec("INSERT INTO shop.orders VALUES (100000, 1, 'after the snapshot')"); err != nil {
			t.Fatal(err)
		}
	}
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

// searchableTempDir is a new directory under the system's temp dir (short:
// socket paths live below it) that the server's user (mysql) can traverse.
func searchableTempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

// verifyEnv is one test's state dir and work-dir parent.
type verifyEnv struct {
	t        testing.TB
	stateDir string
	workDir  string
}

func newVerifyEnv(t testing.TB) *verifyEnv {
	t.Helper()
	dir := searchableTempDir(t, "qv") // as /tmp is: the work dir inside is private
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

const goodChecks = `-- the shop's own invariants
SELECT COUNT(*) = 4000 FROM shop.orders;
SELECT SUM(amount) > 0
  FROM shop.orders;
`

func TestVerifyGoodSet(t *testing.T) {
	for _, fstype := range []string{"xfs", "ext4", "btrfs"} {
		t.Run(fstype, func(t *testing.T) {
			snap := makeSnapshot(t, fstype, snapshotOptions{})
			e := newVerifyEnv(t)
			// The operator's options apply, but never the ones that keep the
			// server private: with this socket winning verify could not connect.
			opts := writeChecks(t, "[client]\nuser=x\n[mysqld]\ninnodb_buffer_pool_size=32M\nsocket=/nonexistent/mysqld.sock\n")
			args := append(e.args(snap, tagged(snap)...), "--check-sql", writeChecks(t, goodChecks), "--mysqld-options-file", opts,
				"--datadir-relative", snapDataDirRel, "--binlog-basename", snapDataDirRel+"/binlog",
				"--innodb-page-size", "16384", "--lower-case-table-names", "0")
			r, rep := e.verify(args...)
			if r.code != 0 || !rep.OK {
				t.Fatalf("exit %d, problems %q\nstderr: %s\n%s", r.code, rep.Problems, r.stderr, r.stdout)
			}
			if rep.TablesChecked != 2 || len(rep.TablesFailed) != 0 {
				t.Errorf("tables checked %d, failed %v; want shop.orders and shop.audit", rep.TablesChecked, rep.TablesFailed)
			}
			if rep.Binlog == nil || !rep.Binlog.Match || rep.Binlog.Size != int64(snap.binlogPos) {
				t.Errorf("binlog %+v, want a match at %d", rep.Binlog, snap.binlogPos)
			}
			if rep.GTID == nil || !rep.GTID.Match || rep.GTID.Got != snap.gtid {
				t.Errorf("gtid %+v, want %q", rep.GTID, snap.gtid)
			}
			if len(rep.Checks) != 2 || !rep.Checks[0].OK || !rep.Checks[1].OK || rep.Checks[0].Got != "1" {
				t.Errorf("checks %+v", rep.Checks)
			}
			if !rep.Recovery.Ran || len(rep.Recovery.Messages) == 0 {
				t.Errorf("a kill -9 snapshot needs crash recovery; report says %+v", rep.Recovery)
			}
			if rep.StartMS <= 0 || !strings.Contains(rep.ServerVersion, "MariaDB") || rep.DataDir != snap.volume+"/db" {
				t.Errorf("start_ms %v, version %q, datadir %q", rep.StartMS, rep.ServerVersion, rep.DataDir)
			}
			t.Logf("%s: duration %.0f ms, start %.0f ms, timings %v, recovery %q", fstype, rep.DurationMS, rep.StartMS, rep.TimingsMS, rep.Recovery.Messages)
		})
	}
}

// The production path: the source keeps running, locked and frozen for the
// copy only. The set verifies at the tagged position, without the writes
// that came after the unlock.
func TestVerifyLockedCopyOfRunningServer(t *testing.T) {
	snap := makeSnapshot(t, "xfs", snapshotOptions{locked: true})
	e := newVerifyEnv(t)
	r, rep := e.verify(append(e.args(snap, tagged(snap)...), "--check-sql", writeChecks(t, goodChecks))...)
	if r.code != 0 || !rep.OK || !rep.Binlog.Match || !rep.GTID.Match {
		t.Fatalf("exit %d, problems %q, binlog %+v, gtid %+v", r.code, rep.Problems, rep.Binlog, rep.GTID)
	}
}

func TestVerifyFindsDataDirAndSkipsUntaggedBinlog(t *testing.T) {
	snap := makeSnapshot(t, "xfs", snapshotOptions{})
	e := newVerifyEnv(t)
	r, rep := e.verify(e.args(snap)...)
	if r.code != 0 || !rep.OK {
		t.Fatalf("exit %d, problems %q\nstderr: %s", r.code, rep.Problems, r.stderr)
	}
	if rep.Binlog == nil || rep.Binlog.Skipped == "" || rep.GTID == nil || rep.GTID.Skipped == "" || rep.GTID.Got != snap.gtid {
		t.Errorf("binlog %+v gtid %+v: want both skipped, the GTID still read", rep.Binlog, rep.GTID)
	}
}

func TestVerifyWrongPosition(t *testing.T) {
	snap := makeSnapshot(t, "xfs", snapshotOptions{})
	e := newVerifyEnv(t)
	r, rep := e.verify(e.args(snap, "--expect-binlog-file", snap.binlogFile,
		"--expect-binlog-pos", fmt.Sprint(snap.binlogPos-10), "--expect-gtid", snap.gtid+"0")...)
	requireProblem(t, r, rep, fmt.Sprintf("tagged position is %d", snap.binlogPos-10))
	requireProblem(t, r, rep, "GTID state of the restored server")
	if rep.Binlog.Match || rep.GTID.Match || rep.TablesChecked != 2 {
		t.Errorf("binlog %+v gtid %+v tables %d", rep.Binlog, rep.GTID, rep.TablesChecked)
	}
}

func TestVerifyMissingBinlog(t *testing.T) {
	var file string
	snap := makeSnapshot(t, "ext4", snapshotOptions{beforeCopy: func(t testing.TB, datadir string) {
		idx, err := os.ReadFile(filepath.Join(datadir, "binlog.index"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Fields(string(idx))
		file = filepath.Base(lines[len(lines)-1])
		if err := os.Remove(filepath.Join(datadir, file)); err != nil {
			t.Fatal(err)
		}
	}})
	e := newVerifyEnv(t)
	r, rep := e.verify(e.args(snap, tagged(snap)...)...)
	requireProblem(t, r, rep, "binlog "+file+" missing from the restored set")
}

func TestVerifyServerCannotStart(t *testing.T) {
	snap := makeSnapshot(t, "xfs", snapshotOptions{beforeCopy: func(t testing.TB, datadir string) {
		// The redo log is what crash recovery needs: without it InnoDB refuses.
		logs, _ := filepath.Glob(filepath.Join(datadir, "ib_logfile*"))
		if len(logs) == 0 {
			t.Fatal("no ib_logfile in the datadir")
		}
		for _, l := range logs {
			if err := os.WriteFile(l, []byte("garbage"), 0o660); err != nil {
				t.Fatal(err)
			}
		}
	}})
	e := newVerifyEnv(t)
	r, rep := e.verify(e.args(snap, tagged(snap)...)...)
	requireProblem(t, r, rep, "server did not start on the restored datadir")
	if !strings.Contains(strings.Join(rep.Problems, " "), "[ERROR]") {
		t.Errorf("the problem should quote the server's errors: %q", rep.Problems)
	}
}

func TestVerifyFalseCheck(t *testing.T) {
	snap := makeSnapshot(t, "xfs", snapshotOptions{})
	e := newVerifyEnv(t)
	checks := writeChecks(t, "SELECT COUNT(*) = 4000 FROM shop.orders;\nSELECT COUNT(*) = 1 FROM shop.orders WHERE amount > 5000;\nSELECT id FROM shop.orders;\nSELECT nope FROM shop.nothing;\n")
	r, rep := e.verify(append(e.args(snap, tagged(snap)...), "--check-sql", checks)...)
	requireProblem(t, r, rep, "amount > 5000")
	requireProblem(t, r, rep, "4000 rows")
	requireProblem(t, r, rep, "error:")
	if len(rep.Checks) != 4 || !rep.Checks[0].OK || rep.Checks[1].OK || rep.Checks[1].Got != "0" {
		t.Errorf("checks %+v", rep.Checks)
	}
}

// An LVM physical volume (its label on the second sector) is refused before
// anything is mounted: assembling a copy of a volume group is not supported.
func TestVerifyRefusesLVMVolume(t *testing.T) {
	fixture.RequireRoot(t)
	e := newVerifyEnv(t)
	vol := fmt.Sprintf("vol-0%x", time.Now().UnixNano()&0xffffffffffff)
	img := filepath.Join(t.TempDir(), vol+".img")
	label := make([]byte, 4<<20)
	copy(label[512:], "LABELONE")
	copy(label[512+24:], "LVM2 001")
	if err := os.WriteFile(img, label, 0o600); err != nil {
		t.Fatal(err)
	}
	loop, err := fixture.AttachImage(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { loop.Detach() })
	r, _ := e.verify("verify", "--volume", vol, "--state-dir", e.stateDir, "--work-dir", e.workDir, "--device-wait", "0s")
	if r.code != contract.ExitUsage || !strings.Contains(r.stderr, "LVM") || !strings.Contains(r.stderr, vol) {
		t.Errorf("exit %d, stderr %q; want 2 naming the volume and LVM", r.code, r.stderr)
	}
}

func TestVerifyBadInputsExit2(t *testing.T) {
	e := newVerifyEnv(t)
	checks := writeChecks(t, "-- only a comment\n")
	notExec := writeChecks(t, "SELECT 1;") // a plain 0600 file
	base := []string{"verify", "--state-dir", e.stateDir, "--work-dir", e.workDir, "--device-wait", "0s"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no volume", nil, "no --volume"},
		{"bad volume id", []string{"--volume", "vol-XYZ"}, "vol-XYZ"},
		{"duplicate", []string{"--volume", "vol-0abc12345678", "--volume", "vol-0abc12345678"}, "twice"},
		{"pos without file", []string{"--volume", "vol-0abc12345678", "--expect-binlog-pos", "100"}, "go together"},
		{"bad pos", []string{"--volume", "vol-0abc12345678", "--expect-binlog-file", "binlog.000001", "--expect-binlog-pos", "x"}, `"x"`},
		{"bad binlog file", []string{"--volume", "vol-0abc12345678", "--expect-binlog-file", "/etc/passwd", "--expect-binlog-pos", "4"}, "/etc/passwd"},
		{"empty check file", []string{"--volume", "vol-0abc12345678", "--check-sql", checks}, "no statements"},
		{"missing check file", []string{"--volume", "vol-0abc12345678", "--check-sql", "/nonexistent.sql"}, "/nonexistent.sql"},
		{"bad mysqld", []string{"--volume", "vol-0abc12345678", "--mysqld", notExec}, notExec},
		{"bad page size", []string{"--volume", "vol-0abc12345678", "--innodb-page-size", "1000"}, "1000"},
		{"bad lower case", []string{"--volume", "vol-0abc12345678", "--lower-case-table-names", "3"}, `"3"`},
		{"escaping datadir", []string{"--volume", "vol-0abc12345678", "--datadir-relative", "../x"}, "../x"},
		{"bad timeout", []string{"--volume", "vol-0abc12345678", "--timeout", "0s"}, "--timeout"},
		{"not attached", []string{"--volume", "vol-0fedcba987654"}, "vol-0fedcba987654"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := e.verify(append(base, tt.args...)...)
			if line := requireUsageLine(t, r); !strings.Contains(line, tt.want) {
				t.Errorf("stderr %q does not name %q", line, tt.want)
			}
		})
	}
}

// A two-volume set, as production often has: the datadir on an XFS volume,
// InnoDB's redo log and the binary log on an ext4 one. verify must mount
// both and start the server with the redo log and binlog where they are.
func TestVerifyTwoVolumeSet(t *testing.T) {
	fixture.RequireLoopFS(t, "xfs")
	fixture.RequireLoopFS(t, "ext4")
	fixture.SkipUnlessMariaDB(t)
	data := sourceFS(t, "xfs")
	logs := sourceFS(t, "ext4")
	datadir := filepath.Join(data.Mount, "db")
	redo, binlogs := filepath.Join(logs.Mount, "redo"), filepath.Join(logs.Mount, "binlog")
	for _, d := range []string{redo, binlogs} {
		mysqlDir(t, d)
	}
	// Install on the datadir, then move the redo log to the other volume.
	m, err := mariadb.Start(mariadb.Options{DataDir: datadir, NoLogBin: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	moveFile(t, filepath.Join(datadir, "ib_logfile0"), filepath.Join(redo, "ib_logfile0"))
	m, db := startSource(t, mariadb.Options{DataDir: datadir, StartTimeout: 90 * time.Second,
		ExtraArgs: []string{"--innodb-log-group-home-dir=" + redo, "--log-bin=" + filepath.Join(binlogs, "bin")}})
	defer m.Stop()
	defer db.Close()
	writeShop(t, db)
	var snap snapshot
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&snap.binlogFile, &snap.binlogPos, new(string), new(string)); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&snap.gtid); err != nil {
		t.Fatal(err)
	}
	stopSource(t, m, db, false)
	volData, _ := attachCopy(t, data)
	volLogs, _ := attachCopy(t, logs)

	e := newVerifyEnv(t)
	snap.volume = volData
	// Without the redo log's location the server cannot start: the setting matters.
	r, rep := e.verify(append(e.args(snap, tagged(snap)...), "--volume", volLogs, "--binlog-basename", "binlog/bin")...)
	requireProblem(t, r, rep, "ib_logfile0 was not found")
	r, rep = e.verify(append(e.args(snap, tagged(snap)...), "--volume", volLogs, "--datadir-relative", "db",
		"--innodb-log-group-home-dir", "redo", "--binlog-basename", "binlog/bin")...)
	if r.code != 0 || !rep.OK {
		t.Fatalf("exit %d, problems %q\n%s", r.code, rep.Problems, r.stderr)
	}
	if len(rep.Volumes) != 2 || rep.TablesChecked != 2 || !rep.Binlog.Match || !rep.GTID.Match || !rep.Recovery.Ran {
		t.Errorf("report %+v", rep)
	}
}

// moveFile moves a file across filesystems, keeping mode and owner.
func moveFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	uid, gid, _ := mysqlOwner()
	if err := os.WriteFile(to, data, 0o660); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(to, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(from); err != nil {
		t.Fatal(err)
	}
}

func sourceFS(t testing.TB, fstype string) *fixture.LoopFS {
	t.Helper()
	l, err := fixture.NewLoopFSNamed(t.TempDir(), fstype, 300, "source.img")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mysqlDir(t *testing.T, dir string) {
	t.Helper()
	uid, gid, err := mysqlOwner()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func mysqlOwner() (int, int, error) {
	u, err := user.Lookup("mysql")
	if err != nil {
		return 0, 0, err
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	return uid, gid, errors.Join(err1, err2)
}

// attachCopy takes a frozen copy of src as a new vol-<hex>.img and attaches
// it, as a volume restored from a snapshot is attached.
func attachCopy(t testing.TB, src *fixture.LoopFS) (string, *fixture.Loop) {
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
			t.Errorf("detach %s: %v (still in use after the run?)", loop.Device, err)
		}
	})
	return vol, loop
}
