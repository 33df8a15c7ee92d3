package restore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	demodata "github.com/quiesce/quiesce/demo"
	"github.com/quiesce/quiesce/internal/fsfreeze"
	"github.com/quiesce/quiesce/internal/mountinfo"
	"github.com/quiesce/quiesce/test/demo/bank"
	"github.com/quiesce/quiesce/test/demo/pool"
	"github.com/quiesce/quiesce/test/fixture"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

// TestDrillOnLockedFrozenCopy takes a snapshot the way quiesce does (BACKUP
// STAGE BLOCK_COMMIT on a pinned connection, position read under the lock, FIFREEZE, FICLONE,
// FITHAW, UNLOCK) while a writer runs, then drills it: the drill must pass.
// Then it drills the same copy with a wrong position tag: the drill must fail.
func TestDrillOnLockedFrozenCopy(t *testing.T) {
	fixture.RequireLoopFS(t, "xfs")
	fixture.SkipUnlessMariaDB(t)
	fixture.RequireTools(t, "mariadb-binlog")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	work := t.TempDir()
	var cl pool.Cleanup
	t.Cleanup(func() {
		if err := cl.Run(context.Background(), time.Minute); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	p, err := pool.NewPool(ctx, &cl, work, 2<<30)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	rand.Read(b[:])
	vol, err := pool.NewVolume(ctx, &cl, p, "vol-0de30"+hex.EncodeToString(b[:]), filepath.Join(work, "data"), 512<<20)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mariadb.Start(mariadb.Options{
		DataDir:   filepath.Join(vol.Dir, "db"),
		TCP:       true,
		ExtraArgs: []string{"--log-bin=binlog", "--server-id=1", "--sync-binlog=1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cl.Push("stop mariadbd", func(context.Context) error { return m.Stop() })
	db, err := m.DB()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := bank.Load(ctx, db, demodata.BankSQL); err != nil {
		t.Fatal(err)
	}
	var base string
	if err := db.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&base); err != nil {
		t.Fatal(err)
	}
	gpos, err := ParseGTIDPos(base)
	if err != nil {
		t.Fatal(err)
	}

	w := &bank.Writer{DB: db, Workers: 3}
	wctx, stopWriter := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.Run(wctx); close(done) }()
	defer func() { stopWriter(); <-done }()
	time.Sleep(700 * time.Millisecond)

	// Lock, read the position, freeze, copy, thaw, unlock.
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	freezeStarted := time.Now()
	// BACKUP STAGE, as hostagent's auto mode does on MariaDB: FTWRL would
	// deadlock with this writer (a transaction holding the sequence row waits
	// for the global read lock while FTWRL waits for the statement queued
	// behind that row lock, until innodb_lock_wait_timeout).
	for _, stmt := range []string{"BACKUP STAGE START", "BACKUP STAGE BLOCK_COMMIT"} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	var file string
	var pos uint64
	var doDB, ignoreDB string
	if err := conn.QueryRowContext(ctx, "SHOW MASTER STATUS").Scan(&file, &pos, &doDB, &ignoreDB); err != nil {
		t.Fatal(err)
	}
	var gtid string
	if err := conn.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&gtid); err != nil {
		t.Fatal(err)
	}
	if err := fsfreeze.Freeze(vol.Dir, 0); err != nil {
		t.Fatal(err)
	}
	snapImage := filepath.Join(p.Dir, "snap-0test.img")
	_, cerr := pool.Clone(vol.Image, snapImage)
	if _, err := fsfreeze.Thaw(vol.Dir); err != nil {
		t.Fatal(err)
	}
	if cerr != nil {
		t.Fatal(cerr)
	}
	if _, err := conn.ExecContext(ctx, "BACKUP STAGE END"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	time.Sleep(300 * time.Millisecond)
	stopWriter()
	<-done
	if n, errs := w.Errors(); n > 0 {
		t.Fatalf("writer errors: %d %v", n, errs)
	}
	if w.Count() < 10 {
		t.Fatalf("writer committed only %d transfers", w.Count())
	}

	snap := Snapshot{ID: "snap-0test", Image: snapImage, FreezeStarted: freezeStarted, Tags: map[string]string{
		TagConsistency: "application", TagBinlogFile: file, TagBinlogPos: strconv.FormatUint(pos, 10), TagGTID: gtid,
	}}
	opts := Options{
		MountDir: filepath.Join(work, "restore", "snap-0test"), DataSubdir: "db", BinlogBase: "binlog",
		Commits: w.Commits(), GTIDBase: gpos[0].Seq,
	}
	res, err := Drill(ctx, snap, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed() {
		t.Fatalf("drill of a locked+frozen copy failed: %q (recovery: %s %q)", res.Problems, res.Recovery.Summary(), res.Recovery.Notes)
	}
	if res.Invariants.MaxID == 0 || res.LastEventEnd != pos || res.RestoredGTID != gtid {
		t.Fatalf("drill passed without checking: %+v", res)
	}
	t.Logf("notes: %q", res.Recovery.Notes)
	t.Logf("restored: %d transfers, binlog %s:%d, gtid %s, startup %s, recovery: %s", res.Invariants.MaxID, file, pos, gtid, res.StartupTime, res.Recovery.Summary())
	if mountinfo.IsMountPoint(opts.MountDir) {
		t.Fatal("drill left the copy mounted")
	}

	// The same copy with a position tag one event short: must fail loudly.
	snap.Tags[TagBinlogPos] = strconv.FormatUint(pos-1, 10)
	snap.Tags[TagGTID] = "0-1-1"
	res, err = Drill(ctx, snap, opts)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(res.Problems, "\n")
	for _, want := range []string{"tagged position is " + strconv.FormatUint(pos-1, 10), "≠ tagged \"0-1-1\""} {
		if !strings.Contains(joined, want) {
			t.Errorf("wrong tags not caught: want %q in %q", want, joined)
		}
	}
	if _, err := os.Stat(snapImage); err != nil {
		t.Fatalf("drill removed the snapshot image: %v", err)
	}
}
