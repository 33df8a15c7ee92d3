package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/restore"
)

// verifier is one `hostagent verify` run: it fills the report as it goes
// and undoes every step it took, in reverse, whatever happens.
type verifier struct {
	runReport
	in      verifyInput
	log     *slog.Logger
	rep     contract.VerifyReport
	undo    restore.Undo
	work    string
	set     *restore.MountedSet
	journal *restore.Journal
	datadir string
	binlog  string // log-bin basename on the mounted set, "" when none
}

func newVerifier(in verifyInput, c *command) *verifier {
	v := &verifier{in: in, log: c.log, rep: contract.VerifyReport{
		RunID: in.runID, Volumes: in.volumes, TablesFailed: []contract.TableFailure{},
		Checks: []contract.SQLCheck{}, Problems: []string{}, TimingsMS: map[string]float64{},
	}}
	v.runReport = newRunReport(&v.rep.Problems, v.rep.TimingsMS)
	return v
}

// run does the verification. Failed checks go to the report's problems; an
// error means it could not be carried out (bad input, busy, interrupted).
func (v *verifier) run(ctx context.Context) (err error) {
	defer func() {
		if cerr := v.timed("cleanup", func() error { return v.undo.Run(ctx, cleanupBound) }); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
		}
	}()
	if err := v.prepare(ctx); err != nil {
		return err
	}
	if err := v.mount(ctx); err != nil {
		return err
	}
	if v.datadir == "" {
		return nil // reported: nothing to start
	}
	v.timed("binlog", v.checkBinlog)
	srv, err := v.startServer(ctx)
	if err != nil || srv == nil {
		return err
	}
	return v.checkServer(ctx, srv)
}

// prepare makes the private work dir and locks the volumes (cleaning up
// stale runs first).
func (v *verifier) prepare(ctx context.Context) error {
	reg, err := restore.OpenRegistry(registryDir(v.in.stateDir))
	if err != nil {
		return err
	}
	if v.work, err = restore.NewWorkDir(v.in.under); err != nil {
		return err
	}
	v.journal, err = reg.Begin(ctx, v.in.runID, v.work, v.in.volumes)
	if err != nil {
		os.Remove(v.work)
		return classify(err)
	}
	work, journal := v.work, v.journal
	v.undo.Push("remove work dir and release volumes", func(context.Context) error {
		if err := restore.RemoveWorkDir(work); err != nil {
			return err // the journal stays: the next run retries
		}
		return journal.End()
	})
	return nil
}

func (v *verifier) mount(ctx context.Context) error {
	mnt := filepath.Join(v.work, "mnt")
	set, err := v.mountSet(ctx, v.in.setInput, v.journal, func(devs []restore.Device, o restore.MountOptions) (*restore.MountedSet, error) {
		if err := os.Mkdir(mnt, 0o700); err != nil {
			return nil, fmt.Errorf("mount dir: %w", err)
		}
		return restore.MountSet(ctx, devs, mnt, o)
	})
	if err != nil {
		return classify(err)
	}
	v.set = set
	v.undo.Push("unmount", func(ctx context.Context) error {
		return v.timed("unmount", func() error { return set.Close(ctx) })
	})
	return v.findFiles()
}

// findFiles locates the datadir and the binary log on the mounted set.
func (v *verifier) findFiles() error {
	datadir, err := v.set.FindDataDir(v.in.datadirRel)
	if errors.Is(err, restore.ErrNoDataDir) {
		v.problem("%v", err)
		return nil
	}
	if err != nil {
		return classify(err)
	}
	v.datadir = datadir
	if rel, err := filepath.Rel(filepath.Join(v.work, "mnt"), datadir); err == nil {
		v.rep.DataDir = rel // <volume-id>/<path on the volume>
	}
	v.binlog, err = v.set.FindBinlogBase(datadir, v.in.binlogBase, v.in.binlogFile)
	if errors.Is(err, restore.ErrNoDataDir) {
		v.problem("%v", err)
		return nil
	}
	return classify(err)
}

// checkBinlog compares the binlog with its tag before the server touches it.
func (v *verifier) checkBinlog() error {
	if !v.in.expectBinlog {
		v.rep.Binlog = &contract.BinlogCheck{Skipped: "no --expect-binlog-file/--expect-binlog-pos given " +
			"(a set taken without a lock, or by a server without a binary log, has no position)"}
		return nil
	}
	bc, problems := restore.CheckBinlog(v.binlog, v.in.binlogFile, v.in.binlogPos)
	v.rep.Binlog = &bc
	v.rep.Problems = append(v.rep.Problems, problems...)
	return nil
}
