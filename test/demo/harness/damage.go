package harness

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/quiesce/quiesce/test/awslocal"
	"github.com/quiesce/quiesce/test/demo/pool"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

// DamagedTable is the table whose B-tree pages the damaged copy has overwritten.
const DamagedTable = "`bank`.`accounts`"

// InnoDB page layout (storage/innobase/include/fil0fil.h, page0page.h).
const (
	innodbPageSize = 16384
	filPageType    = 24     // FIL_PAGE_TYPE, 2 bytes
	filPageIndex   = 0x45BF // FIL_PAGE_INDEX: a B-tree page
	pageLevel      = 38 + 26
)

// MakeDamagedSnapshot adds a snapshot to the stand-in that verification must
// reject: a copy of src whose bank.accounts leaf pages are overwritten.
//
// Damaging a fresh snapshot proves nothing: a frozen copy of a running server
// keeps its newest pages in the redo log, so crash recovery rewrites them (or
// even a deleted accounts.ibd) and CHECK TABLE says OK. So the copy is first
// recovered and shut down slowly (innodb_fast_shutdown=0: every page written
// to its tablespace, nothing left for redo to repair); only then are the
// pages overwritten. The slow shutdown appends to the binary log, so the
// copy is tagged with the GTID only, not the binlog file and position.
func (e *Env) MakeDamagedSnapshot(ctx context.Context, src CycleSnapshot, runID string) (id string, err error) {
	tmp := filepath.Join(e.Pool.Dir, "damaged-"+runID+".img")
	if _, err := pool.Clone(src.Image, tmp); err != nil {
		return "", fmt.Errorf("copy %s: %w", src.ID, err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := e.damageImage(ctx, tmp); err != nil {
		return "", fmt.Errorf("damage a copy of %s: %w", src.ID, err)
	}
	tags := map[string]string{}
	for k, v := range src.Tags {
		tags[k] = v
	}
	for _, k := range []string{TagBinlogFile, TagBinlogPos, TagVerified, TagVerifiedAt, TagVerifyNote} {
		delete(tags, k)
	}
	tags[TagRunID] = runID
	tags["demo:damaged"] = "true"
	id = e.AWS.AddSnapshot(awslocal.Snapshot{VolumeID: src.VolumeID, VolumeSize: 1, InstanceID: e.InstanceID, Tags: tags,
		Description: "deliberately damaged copy of " + src.ID + ": B-tree pages of bank.accounts overwritten after a slow shutdown"})
	if err := os.Rename(tmp, e.Hooks.SnapshotPath(id)); err != nil {
		return "", err
	}
	return id, nil
}

// damageImage recovers the copy on a server of its own, shuts it down
// slowly, and overwrites the leaf pages of bank.accounts; it leaves nothing
// mounted, attached or running.
func (e *Env) damageImage(ctx context.Context, image string) (err error) {
	var cl pool.Cleanup
	defer func() { err = errors.Join(err, cl.Run(context.WithoutCancel(ctx), 90*time.Second)) }()
	dev, err := pool.Attach(ctx, image)
	if err != nil {
		return err
	}
	cl.Push("detach "+dev, func(ctx context.Context) error { return pool.Detach(ctx, dev) })
	mnt := filepath.Join(e.Cfg.WorkDir, "damage")
	if err := pool.Mount(ctx, dev, mnt, "nouuid"); err != nil {
		return err
	}
	cl.Push("unmount "+mnt, func(ctx context.Context) error {
		if err := pool.Unmount(ctx, mnt); err != nil {
			return err
		}
		return os.Remove(mnt)
	})
	datadir := filepath.Join(mnt, DataSubdir)
	m, err := mariadb.Start(mariadb.Options{DataDir: datadir, ExtraArgs: ServerArgs, StartTimeout: time.Minute})
	if err != nil {
		return fmt.Errorf("recover the copy: %w", err)
	}
	if err := m.Exec("SET GLOBAL innodb_fast_shutdown = 0"); err != nil {
		m.Stop()
		return err
	}
	if err := m.Stop(); err != nil {
		return fmt.Errorf("slow shutdown: %w", err)
	}
	n, err := CorruptLeafPages(filepath.Join(datadir, "bank", "accounts.ibd"))
	if err != nil {
		return err
	}
	e.logf("damage   %d leaf pages of bank.accounts overwritten in a slowly shut down copy", n)
	return nil
}

// CorruptLeafPages overwrites the middle of every B-tree leaf page of a
// tablespace (the roots stay readable, so the server starts and CHECK TABLE
// walks into the damage); their checksums no longer match. It returns how
// many pages it overwrote and fails when there were none.
func CorruptLeafPages(ibd string) (int, error) {
	f, err := os.OpenFile(ibd, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	page := make([]byte, innodbPageSize)
	garbage := make([]byte, 200)
	for i := range garbage {
		garbage[i] = 0xA5
	}
	n := 0
	for p := int64(0); (p+1)*innodbPageSize <= st.Size(); p++ {
		if _, err := f.ReadAt(page, p*innodbPageSize); err != nil {
			return n, fmt.Errorf("read page %d of %s: %w", p, ibd, err)
		}
		if binary.BigEndian.Uint16(page[filPageType:]) != filPageIndex || binary.BigEndian.Uint16(page[pageLevel:]) != 0 {
			continue
		}
		if _, err := f.WriteAt(garbage, p*innodbPageSize+4000); err != nil {
			return n, fmt.Errorf("overwrite page %d of %s: %w", p, ibd, err)
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("%s has no B-tree leaf page to overwrite", ibd)
	}
	return n, f.Sync()
}
