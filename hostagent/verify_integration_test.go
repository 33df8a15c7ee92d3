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
	"os/exec"
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
	src, err := fixture.NewLoopFSNamed(t.TempDir(), fstype, 300, "source.img")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	datadir := filepath.Join(src.Mount, snapDataDirRel)
	m, err := mariadb.Start(mariadb.Options{DataDir: datadir, StartTimeout: 90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	db, err := m.DB()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	snap := snapshot{volume: fmt.Sprintf("vol-0%x", time.Now().UnixNano()&0xffffffffffff)}
	writeShop(t, db)
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&snap.binlogFile, &snap.binlogPos, new(string), new(string)); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&snap.gtid); err != nil {
		t.Fatal(err)
	}
	stopSource(t, m, db, o.cleanShutdown)
	if o.beforeCopy != nil {
		o.beforeCopy(t, datadir)
	}
	image := filepath.Join(t.TempDir(), snap.volume+".img")
	if err := fixture.SnapshotImage(src, image); err != nil {
		t.Fatal(err)
	}
	snap.loop, err = fixture.AttachImage(image)
	if err != nil {
		t.Fatal(err)
	}
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
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
		e.t.Fatalf("hostagent %v: %v", args, err)
	}
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
