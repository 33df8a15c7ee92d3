package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/restore"
)

// verifier is one `hostagent verify` run: it fills the report as it goes
// and undoes every step it took, in reverse, whatever happens.
type verifier struct {
	in      verifyInput
	log     *slog.Logger
	rep     contract.VerifyReport
	undo    restore.Undo
	started time.Time
	work    string
	set     *restore.MountedSet
	journal *restore.Journal
	datadir string
	binlog  string // log-bin basename on the mounted set, "" when none
}

func newVerifier(in verifyInput, c *command) *verifier {
	return &verifier{in: in, log: c.log, started: time.Now(), rep: contract.VerifyReport{
		RunID: in.runID, Volumes: in.volumes, TablesFailed: []contract.TableFailure{},
		Checks: []contract.SQLCheck{}, Problems: []string{}, TimingsMS: map[string]float64{},
	}}
}

func (v *verifier) problem(format string, args ...any) {
	v.rep.Problems = append(v.rep.Problems, fmt.Sprintf(format, args...))
}

// timed runs fn and adds its duration to the report's timings under name.
func (v *verifier) timed(name string, fn func() error) error {
	start := time.Now()
	err := fn()
	v.rep.TimingsMS[name] += msSince(start)
	return err
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

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
// stale runs first), then finds the volumes' devices.
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
	var devs []restore.Device
	err := v.timed("find_devices", func() (err error) {
		devs, err = restore.FindDevices(ctx, v.in.volumes, restore.FindOptions{Wait: v.in.deviceWait})
		return err
	})
	if err != nil {
		return classify(err)
	}
	mnt := filepath.Join(v.work, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		return fmt.Errorf("mount dir: %w", err)
	}
	err = v.timed("mount", func() (err error) {
		v.set, err = restore.MountSet(ctx, devs, mnt, restore.MountOptions{Journal: v.journal})
		return err
	})
	if err != nil {
		return classify(err)
	}
	set := v.set
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
