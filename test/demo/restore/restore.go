// Package restore is the demo's restore drill: a snapshot image is attached
// as a loop device and mounted, its binary log is checked against the
// position tagged on the snapshot BEFORE any server touches it, then a second
// mariadbd is started on it (it must start; what crash recovery it needed is
// reported) and the bank's invariants are verified.
package restore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/demo/bank"
	"github.com/quiesce/quiesce/test/demo/pool"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

// Snapshot tag keys the drill reads (the Lambda writes them).
const (
	TagConsistency = contract.TagConsistency
	TagBinlogFile  = contract.TagBinlogFile
	TagBinlogPos   = contract.TagBinlogPos
	TagGTID        = contract.TagGTID
	TagRunID       = contract.TagRunID
)

// Snapshot is what the drill needs to know about one snapshot.
type Snapshot struct {
	ID string
	// Image is the volume image to restore. The drill writes to it (crash
	// recovery, a new binlog): give it a volume made from the snapshot, as
	// EBS restores do, not the snapshot itself.
	Image string
	Tags  map[string]string // as stored by the stand-in
	// FreezeStarted is when the freeze command started (hostagent's
	// started_at): every transfer whose COMMIT returned before it must be in
	// the snapshot.
	FreezeStarted time.Time
}

// Options configure a drill.
type Options struct {
	// MountDir is where the copy is mounted (created; must be under the demo's work dir).
	MountDir string
	// DataSubdir is the datadir's path inside the volume (the demo uses "db").
	DataSubdir string
	// BinlogBase is the --log-bin base name (relative, in the datadir).
	BinlogBase string
	// ServerArgs are extra mariadbd options (same tuning as the original).
	ServerArgs []string
	// Commits are the writer's commits, for the no-lost-commit check.
	Commits []bank.Commit
	// GTIDBase is the GTID sequence number before the first transfer (after
	// the schema load); every transfer is exactly one binlogged transaction,
	// so the restored GTID seq must be GTIDBase + the transfers in InnoDB.
	GTIDBase uint64
	// GTIDDomain is the domain the original server writes (0).
	GTIDDomain uint32
	// StartTimeout bounds the restored server's startup (default 60 s).
	StartTimeout time.Duration
}

// Result is the outcome of one drill.
type Result struct {
	SnapshotID  string
	Consistency string
	Problems    []string // empty: passed
	Started     bool
	StartupTime time.Duration
	Recovery    Recovery
	// Binary log, read from the copy before the server started.
	BinlogFile   string
	TaggedPos    uint64
	FileSize     int64
	LastEventEnd uint64
	Events       int
	// GTID tagged and as the restored server reports it.
	TaggedGTID   string
	RestoredGTID string
	Invariants   bank.Invariants
	Duration     time.Duration
}

// Passed reports whether every check held.
func (r Result) Passed() bool { return r.Started && len(r.Problems) == 0 }

func (r *Result) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Drill mounts the snapshot, checks it, and undoes everything (server
// stopped by PID, unmounted, loop device detached) before returning, also
// when ctx is cancelled. It returns an error only when the drill could not be
// carried out at all; failed checks are in Result.Problems.
func Drill(ctx context.Context, snap Snapshot, o Options) (res Result, err error) {
	start := time.Now()
	res = Result{SnapshotID: snap.ID, Consistency: snap.Tags[TagConsistency]}
	defer func() { res.Duration = time.Since(start) }()
	if o.DataSubdir == "" || o.BinlogBase == "" || o.MountDir == "" {
		return res, errors.New("restore: MountDir, DataSubdir and BinlogBase are required")
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
	}
	var cl pool.Cleanup
	defer func() {
		if cerr := cl.Run(context.WithoutCancel(ctx), 90*time.Second); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()

	dev, err := pool.Attach(ctx, snap.Image)
	if err != nil {
		return res, err
	}
	cl.Push("detach "+dev, func(ctx context.Context) error { return pool.Detach(ctx, dev) })
	// nouuid: the copy has the same XFS UUID as the original, which is mounted.
	if err := pool.Mount(ctx, dev, o.MountDir, "nouuid"); err != nil {
		return res, fmt.Errorf("mount snapshot %s: %w", snap.ID, err)
	}
	cl.Push("unmount "+o.MountDir, func(ctx context.Context) error { return pool.Unmount(ctx, o.MountDir) })
	datadir := filepath.Join(o.MountDir, o.DataSubdir)

	// 1. The binary log as frozen, before a server appends to or rotates it.
	checkBinlog(ctx, datadir, o.BinlogBase, snap, &res)

	// 2. A second server on the copy must start.
	m, err := mariadb.Start(mariadb.Options{
		DataDir:      datadir,
		TCP:          true,
		ExtraArgs:    append([]string{"--log-bin=" + o.BinlogBase, "--server-id=1"}, o.ServerArgs...),
		StartTimeout: o.StartTimeout,
	})
	if err != nil {
		res.problem("restored mariadbd did not start: %v", err)
		return res, nil
	}
	res.Started = true
	res.StartupTime = m.StartupTime
	cl.Push("stop restored mariadbd", func(context.Context) error { return m.Stop() })
	if logData, err := os.ReadFile(m.ErrorLog); err == nil {
		res.Recovery = ParseErrorLog(bytes.NewReader(logData))
		for _, e := range res.Recovery.Errors {
			res.problem("restored server logged %s", e)
		}
	} else {
		res.problem("read restored error log: %v", err)
	}

	db, err := m.DB()
	if err != nil {
		return res, fmt.Errorf("connect to restored server: %w", err)
	}
	defer db.Close()
	qctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	// 3. The bank's invariants.
	inv, err := bank.Check(qctx, db)
	if err != nil {
		res.problem("bank check: %v", err)
		return res, nil
	}
	res.Invariants = inv
	for _, p := range inv.Problems() {
		res.problem("%s", p)
	}

	// 4. Binlog and InnoDB agree: the GTID the server recovered from the
	// binlog is the tagged one, and it counts exactly the transfers in InnoDB.
	checkGTID(qctx, db, snap, o, &res)

	// 5. No commit acknowledged before the freeze began is missing.
	checkNoLostCommits(snap, o.Commits, &res)
	return res, nil
}

func checkBinlog(ctx context.Context, datadir, base string, snap Snapshot, res *Result) {
	res.BinlogFile = snap.Tags[TagBinlogFile]
	posTag := snap.Tags[TagBinlogPos]
	if res.BinlogFile == "" || posTag == "" {
		res.problem("snapshot has no %s/%s tags (consistency=%q)", TagBinlogFile, TagBinlogPos, res.Consistency)
		return
	}
	pos, err := strconv.ParseUint(posTag, 10, 64)
	if err != nil {
		res.problem("tag %s=%q is not a number", TagBinlogPos, posTag)
		return
	}
	res.TaggedPos = pos
	if strings.ContainsAny(res.BinlogFile, "/") {
		res.problem("tag %s=%q is not a file name", TagBinlogFile, res.BinlogFile)
		return
	}
	idx, err := os.ReadFile(filepath.Join(datadir, base+".index"))
	if err != nil {
		res.problem("read binlog index in the copy: %v", err)
		return
	}
	names, _ := ParseIndex(bytes.NewReader(idx))
	if len(names) == 0 {
		res.problem("binlog index in the copy is empty")
		return
	}
	for _, n := range names {
		// An absolute entry would make the restored server read the live
		// server's binlog instead of the copy's.
		if filepath.IsAbs(n) && !strings.HasPrefix(n, datadir+"/") {
			res.problem("binlog index entry %q points outside the copy", n)
		}
	}
	if last := filepath.Base(names[len(names)-1]); last != res.BinlogFile {
		res.problem("tagged binlog %s is not the last binlog in the copy (%s): the log moved on after the position was read", res.BinlogFile, last)
	}
	file := filepath.Join(datadir, res.BinlogFile)
	fi, err := os.Stat(file)
	if err != nil {
		res.problem("tagged binlog missing from the copy: %v", err)
		return
	}
	res.FileSize = fi.Size()
	if uint64(fi.Size()) != pos {
		res.problem("binlog %s in the copy is %d bytes, tagged position is %d", res.BinlogFile, fi.Size(), pos)
	}
	// Parse the file: its last complete event must end exactly at the tag.
	bctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	bin := "mariadb-binlog"
	if _, err := exec.LookPath(bin); err != nil {
		bin = "mysqlbinlog"
	}
	cmd := exec.CommandContext(bctx, bin, "--short-form=false", file)
	cmd.WaitDelay = 2 * time.Second
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		res.problem("%s %s: %v: %s", bin, res.BinlogFile, err, strings.TrimSpace(stderr.String()))
		return
	}
	end, events, err := LastEventEnd(&out)
	if err != nil {
		res.problem("parse %s output: %v", bin, err)
		return
	}
	res.LastEventEnd, res.Events = end, events
	if end != pos {
		res.problem("last event in %s ends at %d, tagged position is %d", res.BinlogFile, end, pos)
	}
}

func checkGTID(ctx context.Context, db *sql.DB, snap Snapshot, o Options, res *Result) {
	res.TaggedGTID = snap.Tags[TagGTID]
	if err := db.QueryRowContext(ctx, "SELECT @@global.gtid_binlog_pos").Scan(&res.RestoredGTID); err != nil {
		res.problem("read restored gtid_binlog_pos: %v", err)
		return
	}
	if res.TaggedGTID == "" {
		res.problem("snapshot has no %s tag", TagGTID)
	} else if same, err := SameGTIDPos(res.TaggedGTID, res.RestoredGTID); err != nil {
		res.problem("compare GTIDs: %v", err)
	} else if !same {
		res.problem("restored gtid_binlog_pos %q ≠ tagged %q", res.RestoredGTID, res.TaggedGTID)
	}
	pos, err := ParseGTIDPos(res.RestoredGTID)
	if err != nil {
		res.problem("restored GTID: %v", err)
		return
	}
	if got, want := pos[o.GTIDDomain].Seq, o.GTIDBase+uint64(res.Invariants.MaxID); got != want {
		res.problem("binlog holds %d transactions after the schema load but InnoDB has %d transfers (GTID seq %d, base %d)",
			int64(got)-int64(o.GTIDBase), res.Invariants.MaxID, got, o.GTIDBase)
	}
}

func checkNoLostCommits(snap Snapshot, commits []bank.Commit, res *Result) {
	if snap.FreezeStarted.IsZero() {
		return
	}
	var lost []int64
	for _, c := range commits {
		if c.End.Before(snap.FreezeStarted) && c.ID > res.Invariants.MaxID {
			lost = append(lost, c.ID)
		}
	}
	if len(lost) > 0 {
		if len(lost) > 5 {
			lost = lost[:5]
		}
		res.problem("transfers acknowledged before the freeze began are missing from the snapshot: ids %v…", lost)
	}
}
