package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/fixture"
)

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
