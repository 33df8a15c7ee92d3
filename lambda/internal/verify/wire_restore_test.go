package verify_test

import (
	"strings"
	"testing"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/verify"
)

// The set's quiesce:restore settings reach hostagent verify through the
// real document's parameters (the stand-in checks every allowedPattern).
func TestWireVerifyPassesTheRestoreSettings(t *testing.T) {
	e := newEnv(t, true)
	lctn := 1
	tag := contract.NewRestoreTag(&contract.RestoreInfo{DataDir: "/var/lib/mysql/data", LogBinBasename: "/var/lib/mysql-binlog/binlog/mysql-bin",
		InnoDBPageSize: 4096, LowerCaseTableNames: &lctn, InnoDBDataFilePath: "ibdata1:12M;ibdata2:64M:autoextend", InnoDBLogGroupHomeDir: "/var/lib/mysql/redo"},
		[]contract.MountReport{{Path: "/var/lib/mysql"}, {Path: "/var/lib/mysql-binlog"}}).Encode()
	e.addSet("r-restore", e.clock.Now(), "application", map[string]string{contract.TagRestore: tag})
	res, err := e.run(baseEvent, 0)
	if v := only(t, res); err != nil || v.RunID != "r-restore" || v.Status != verify.StatusOK {
		t.Fatalf("verification: %v %+v", err, v)
	}
	invs := e.host.Invocations()
	if len(invs) != 1 {
		t.Fatalf("verify commands = %d", len(invs))
	}
	want := map[string]string{"datadirRelative": "data", "binlogBasename": "binlog/mysql-bin", "innodbPageSize": "4096", "lowerCaseTableNames": "1",
		"innodbDataFilePath": "ibdata1:12M;ibdata2:64M:autoextend", "innodbLogGroupHomeDir": "redo",
		"expectBinlogFile": "mysql-bin.000042", "expectBinlogPos": "4711", "expectGtid": "0-1-1234"}
	for k, v := range want {
		if got := invs[0].Param(k); got != v {
			t.Errorf("parameter %s = %q, want %q (tag %q)", k, got, v, tag)
		}
	}
	e.assertClean()
}

// A field the tag had to cut, and a set without the tag (taken before it
// existed), leave hostagent verify to find the files itself.
func TestWireVerifyWithoutRestoreSettings(t *testing.T) {
	e := newEnv(t, true)
	e.addSet("r-cut", e.clock.Now(), "application", map[string]string{contract.TagRestore: "page=16384;lctn=0;cut=datadir,binlog,mount"})
	res, err := e.run(baseEvent, 0)
	if v := only(t, res); err != nil || v.Status != verify.StatusOK {
		t.Fatalf("verification: %v %+v", err, v)
	}
	p := e.host.Invocations()[0]
	if p.Param("innodbPageSize") != "16384" || p.Param("lowerCaseTableNames") != "0" {
		t.Errorf("kept fields not passed: %v", p.Parameters)
	}
	for _, k := range []string{"datadirRelative", "binlogBasename", "innodbDataFilePath", "innodbLogGroupHomeDir"} {
		if _, sent := p.Parameters[k]; sent {
			t.Errorf("parameter %s sent for a field the tag does not carry: %v", k, p.Parameters[k])
		}
	}
	e.assertClean()
}

// The expected binlog position and GTID state only where the lock mode
// fixes them: instance blocks no commit and none locks nothing, so their
// positions are lower bounds at best and a verify demanding them would fail
// good sets; replica stops the applier of a read-only server, so its own
// binlog is fixed.
func TestWireVerifyExpectsThePositionOnlyUnderAFixingLock(t *testing.T) {
	for lock, expect := range map[string]bool{contract.LockFTWRL: true, contract.LockBackupStage: true, contract.LockReplica: true,
		contract.LockInstance: false, contract.LockNone: false, "": false} {
		t.Run("lock="+lock, func(t *testing.T) {
			e := newEnv(t, true)
			e.addSet("r-lock", e.clock.Now(), "application", map[string]string{contract.TagLock: lock})
			res, err := e.run(baseEvent, 0)
			if v := only(t, res); err != nil || v.RunID != "r-lock" || v.Status != verify.StatusOK {
				t.Fatalf("verification: %v %+v", err, v)
			}
			p := e.host.Invocations()[0]
			for _, k := range []string{"expectBinlogFile", "expectBinlogPos", "expectGtid"} {
				if _, sent := p.Parameters[k]; sent != expect {
					t.Errorf("%s sent = %v, want %v: %v", k, sent, expect, p.Parameters)
				}
			}
			e.assertClean()
		})
	}
}

// A set that cannot hold the datadir fails at once with the reason, before
// any volume is created: the datadir was on no frozen mount, or the
// snapshot of its mount is not in the set.
func TestWireVerifySetWithoutTheDataDir(t *testing.T) {
	for name, c := range map[string]struct{ tag, why string }{
		"unmapped":      {"page=16384;binlog=mysql-bin;binlog-mount=/var/lib/mysql-binlog;unmapped=datadir", "the datadir was on no frozen mount"},
		"mount missing": {"page=16384;datadir=.;mount=/srv/mysql", "no snapshot of set r-nodata is of /srv/mysql"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, true)
			e.addSet("r-nodata", e.clock.Now(), "application", map[string]string{contract.TagRestore: c.tag})
			res, err := e.run(baseEvent, 0)
			v := only(t, res)
			if err != nil || v.RunID != "r-nodata" || v.Status != verify.StatusFailed || !strings.Contains(v.Reason, c.why) {
				t.Fatalf("verification: %v %+v", err, v)
			}
			if n := len(e.srv.CallsOf("CreateVolume")); n != 0 || len(e.host.Invocations()) != 0 {
				t.Fatalf("%d volumes created, %d commands sent for a set without its datadir", n, len(e.host.Invocations()))
			}
			for _, tags := range e.snapTags("r-nodata") {
				if tags[contract.TagVerified] != "failed" || !strings.Contains(tags[contract.TagVerifyNote], c.why) {
					t.Fatalf("snapshot tags %v", tags)
				}
			}
			e.assertClean()
		})
	}
}
