package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

// ReplicaResult is what `demo replica` measured.
type ReplicaResult struct {
	Machine   Machine
	Snapshots []*ReplicaSnapshot
	Clones    []*Clone
	Checks    []Comparison
	Bench     []ModeBench
	GoBench   []GoBenchRow
	Problems  []string
	Duration  time.Duration
}

// Failed reports whether a step or a comparison failed.
func (r *ReplicaResult) Failed() bool {
	if len(r.Problems) > 0 {
		return true
	}
	for _, c := range r.Checks {
		if !c.Equal() {
			return true
		}
	}
	return false
}

func (r *ReplicaResult) problem(err error) { r.Problems = append(r.Problems, err.Error()) }

// Comparison is every server's state after one clone, with the writer
// paused and everything the primary wrote applied everywhere.
type Comparison struct {
	After  string // which clone it follows
	States []ServerState
}

// Equal: every server has the primary's checksums and GTID position.
func (c Comparison) Equal() bool { return c.ChecksumsEqual() && c.GTIDEqual() }

// ChecksumsEqual: every table's CHECKSUM TABLE is the primary's everywhere.
func (c Comparison) ChecksumsEqual() bool {
	if len(c.States) < 2 {
		return false
	}
	for _, s := range c.States[1:] {
		for t, sum := range c.States[0].Checksums {
			if s.Checksums[t] != sum || sum == "" {
				return false
			}
		}
	}
	return true
}

// GTIDEqual: every replica's gtid_slave_pos is the primary's gtid_binlog_pos.
func (c Comparison) GTIDEqual() bool {
	if len(c.States) < 2 {
		return false
	}
	for _, s := range c.States[1:] {
		if s.GTID != c.States[0].GTID || s.GTID == "" {
			return false
		}
	}
	return true
}

// RunReplica runs the replica demo: a snapshot of the replica in replica
// lock mode cloned to a sibling replica, a snapshot of the primary cloned to
// a replica of it, each compared with the primary once caught up; then,
// with BenchCycles, the lock modes side by side on the replica. Everything
// is released before it returns, also on error or interrupt.
func RunReplica(ctx context.Context, o ReplicaOptions) (res *ReplicaResult, err error) {
	start := time.Now()
	e, err := SetupReplica(ctx, o)
	if err != nil {
		return nil, err
	}
	res = &ReplicaResult{Machine: DescribeMachine(e.Version)}
	defer func() {
		res.Duration = time.Since(start)
		if cerr := e.Close(context.WithoutCancel(ctx)); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
	}()
	if err := e.cloneScenario(ctx, res, "replica", contract.LockReplica, replicaCloneServerID); err != nil {
		return res, err
	}
	if err := e.cloneScenario(ctx, res, "primary", contract.LockAuto, primaryCloneServerID); err != nil {
		return res, err
	}
	if e.Opt.BenchCycles > 0 {
		if res.Bench, err = e.benchModes(ctx); err != nil {
			return res, err
		}
	}
	if e.Opt.GoBench != "" {
		res.GoBench = readGoBench(e.Opt.GoBench)
	}
	res.Duration = time.Since(start)
	fmt.Fprint(e.Opt.Out, "\n"+ReplicaSummaryText(res))
	if e.Opt.ReportFile != "" {
		if err := appendReport(e.Opt.ReportFile, ReplicaMarkdown(res)); err != nil {
			return res, err
		}
		e.logf("report   appended to %s", e.Opt.ReportFile)
	}
	return res, nil
}

// cloneScenario: with the writer running, snapshot of (replica or
// primary) in mode, clone it, wait for lag 0; pause the writer and compare
// every server. A failed step is a problem of the result and ends the run
// (the error is only for an interrupt).
func (e *ReplicaEnv) cloneScenario(ctx context.Context, res *ReplicaResult, of, mode string, serverID int) error {
	e.StartWriter()
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return err
	}
	vol, defaults := e.ReplicaVol, e.ReplicaDefaults
	if of == "primary" {
		vol, defaults = e.PrimaryVol, e.PrimaryDefaults
	}
	s, err := e.snapshot(ctx, of, vol, defaults, mode)
	res.Snapshots = append(res.Snapshots, s)
	if err != nil {
		res.problem(err)
		return ctx.Err()
	}
	e.logf("snapshot %s: %s lock held in %.0f ms (lock %.0f ms), frozen until thaw %.0f ms, copy %s, writer's max stall %s ms",
		of, s.Freeze.Lock.Mode, s.Freeze.HeldMS, s.Freeze.Lock.AcquiredMS, s.Thaw.HeldMS, s.Copy.Round(time.Microsecond), msString(s.Stall.Max))
	c, err := e.CloneFrom(ctx, s, serverID)
	res.Clones = append(res.Clones, c)
	if err != nil {
		res.problem(err)
		return ctx.Err()
	}
	e.logf("clone    %s at %s from %s's snapshot → replica of %s (%s): replicating in %s, lag 0 after %s",
		c.VolumeID, c.Mount, of, c.Source, c.Coords, c.Replicating.Round(time.Millisecond), c.CaughtUp.Round(time.Millisecond))
	if err := e.StopWriter(ctx); err != nil {
		res.problem(err)
		return ctx.Err()
	}
	cmp, err := e.compare(ctx, "clone of the "+of+" snapshot", res.Clones)
	res.Checks = append(res.Checks, cmp)
	if err != nil {
		res.problem(err)
		return ctx.Err()
	}
	e.logf("compare  writer paused: checksums equal %s, GTID positions equal %s (%s)", yesNo(cmp.ChecksumsEqual()), yesNo(cmp.GTIDEqual()), cmp.States[0].GTID)
	return nil
}

// compare waits until the replica and every clone have applied the
// primary's GTID state, then reads every server's state.
func (e *ReplicaEnv) compare(ctx context.Context, after string, clones []*Clone) (Comparison, error) {
	cmp := Comparison{After: after}
	servers := []struct {
		name string
		m    *mariadb.Server
	}{{"primary", e.Primary}, {"replica", e.Replica}}
	for _, c := range clones {
		if c.server != nil && c.Exit == 0 {
			servers = append(servers, struct {
				name string
				m    *mariadb.Server
			}{"clone of " + c.From, c.server})
		}
	}
	for i, s := range servers {
		if i > 0 {
			if err := e.waitCaughtUp(ctx, s.m); err != nil {
				return cmp, fmt.Errorf("%s: %w", s.name, err)
			}
		}
	}
	for i, s := range servers {
		st, err := readState(ctx, s.name, s.m, i == 0)
		if err != nil {
			return cmp, err
		}
		cmp.States = append(cmp.States, st)
	}
	return cmp, nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

func msString(d time.Duration) string {
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
}

// appendReport appends a markdown section to path (created if missing).
func appendReport(path, markdown string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if _, err := f.WriteString("\n" + markdown); err != nil {
		f.Close()
		return fmt.Errorf("report: %w", err)
	}
	return f.Close()
}
