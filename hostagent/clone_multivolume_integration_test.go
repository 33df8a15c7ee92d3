package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/test/fixture"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

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
	volLogs := snapshotVolume(t, logs)
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
