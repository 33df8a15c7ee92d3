package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/quiesce/quiesce/test/fixture"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

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
	volData, volLogs := snapshotVolume(t, data), snapshotVolume(t, logs)

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

// snapshotVolume takes a frozen copy of l as a new vol-….img, attached.
func snapshotVolume(t *testing.T, l *fixture.LoopFS) string {
	t.Helper()
	vol := fmt.Sprintf("vol-0%x", time.Now().UnixNano()&0xffffffffffff)
	image := filepath.Join(t.TempDir(), vol+".img")
	if err := fixture.SnapshotImage(l, image); err != nil {
		t.Fatal(err)
	}
	loop, err := fixture.AttachImage(image)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := loop.Detach(); err != nil {
			t.Errorf("detach %s: %v", loop.Device, err)
		}
	})
	return vol
}
