package orchestrate

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/clock"
	"github.com/quiesce/quiesce/lambda/internal/consistency"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/metrics"
	"github.com/quiesce/quiesce/lambda/internal/ratelimit"
	"github.com/quiesce/quiesce/lambda/internal/tagvalue"
	"github.com/quiesce/quiesce/lambda/internal/targets"
)

// thawContextTimeout bounds the thaw when the invocation's own context is
// already done (it runs on context.WithoutCancel).
const thawContextTimeout = 10 * time.Second

// freezeParams are the SSM document parameters for freeze.
func freezeParams(cfg *event.Config, t targets.Target) contract.CommandParams {
	req := cfg.FreezeRequest
	req.Mounts, req.MySQLLock = t.Mounts, t.MySQLLock // the target's own, from its tags or the event
	return contract.CommandParams{Action: contract.ActionFreeze, RunID: cfg.RunID, FreezeRequest: req, Timeout: t.FreezeTimeout}
}

// cycle is one instance's way through Cycle's phases: what each phase
// learnt, for the phases after it.
type cycle struct {
	r   *Runner
	ctx context.Context
	cfg *event.Config
	t   targets.Target
	log *slog.Logger
	res InstanceResult
	// follow is work left for the end of the run (see FollowUp).
	follow *FollowUp

	rsv       *ratelimit.Reservation
	thawBy    time.Time // last moment to send thaw (Runner.thawBy)
	sent      time.Time // the freeze was sent (Lambda clock)
	deadline  time.Time // sent + freeze_timeout: hostagent's deadline is later
	windowEnd time.Time // min(deadline, thawBy): snapshot calls end by then

	fr       *contract.FreezeReport
	vols     []string
	perVol   map[string]map[string]string // per-volume tags: device, mounts
	evidence consistency.Evidence
	created  consistency.Verdict // what the snapshots were created with
	so       snapOutcome
	tr       *contract.ThawReport
	final    consistency.Verdict
}

// Cycle quiesces one instance: freeze, snapshot, thaw, tag. It never
// returns without having sent thaw when the freeze may have happened. The
// FollowUp, when not nil, is work for the end of the run (Run does it).
func (r *Runner) Cycle(ctx context.Context, cfg *event.Config, t targets.Target) (InstanceResult, *FollowUp) {
	c := &cycle{r: r, ctx: ctx, cfg: cfg, t: t, log: r.Log.With("run_id", cfg.RunID, "instance", t.InstanceID),
		res: InstanceResult{InstanceID: t.InstanceID, Name: t.Name, Status: StatusFailed, Mounts: t.Mounts}}
	defer func() { c.rsv.Release() }()
	if c.reserve() && c.freeze() && c.pickVolumes() {
		c.snapshot()
		c.thaw()
		c.judge()
		c.tagSnapshots()
		c.finish()
	}
	return c.res, c.follow
}

// reserve paces snapshot creation before freezing, so waiting for EC2's
// bucket never extends the write-blocked window. The volumes are not known
// until hostagent reports them; it reserves the data volumes (the usual
// case) and pickVolumes resizes inside the window if more are reported.
func (c *cycle) reserve() bool {
	if !c.enoughTime("") {
		return false
	}
	estimate := c.t.DataVolumes()
	if len(estimate) == 0 {
		estimate = c.t.VolumeOrder
	}
	var err error
	if c.rsv, err = c.r.Limiter.ReserveVolumes(c.ctx, estimate); err != nil {
		c.res.fail("not started: " + err.Error())
		return false
	}
	// Pacing may have waited: check the budget again before freezing.
	return c.enoughTime(" after pacing snapshot creation")
}

// enoughTime refuses to start a freeze the invocation cannot see through.
func (c *cycle) enoughTime(after string) bool {
	c.thawBy = c.r.thawBy(c.ctx)
	if budget := c.thawBy.Sub(c.r.Clock.Now()); budget < min(c.r.MinStartBudget, c.t.FreezeTimeout) {
		c.res.fail(fmt.Sprintf("not started: only %s left in this invocation%s", budget.Round(time.Millisecond), after))
		return false
	}
	return true
}

// freeze sends the freeze and waits for the FreezeReport. When it fails it
// thaws wherever something may be held, and reports false.
func (c *cycle) freeze() bool {
	c.sent = c.r.Clock.Now()
	c.deadline = c.sent.Add(c.t.FreezeTimeout)
	c.windowEnd = minTime(c.deadline, c.thawBy)
	cmdID, mayHaveRun, err := c.r.send(c.ctx, c.cfg.Document, c.t.InstanceID, freezeParams(c.cfg, c.t), c.windowEnd, true)
	c.res.FreezeSent, c.res.FreezeCommandID = mayHaveRun, cmdID
	if err != nil {
		c.freezeNotSent(err, mayHaveRun)
		return false
	}
	c.log.Info("freeze sent", "command_id", cmdID)
	out, err := c.r.wait(c.ctx, cmdID, c.t.InstanceID, c.sent, c.windowEnd)
	if err == nil {
		c.fr, err = parseFreeze(out, c.cfg.RunID)
	}
	if err != nil {
		c.freezeFailed(err, cmdID, out == nil)
		return false
	}
	l := c.fr.Lock
	c.res.Lock = &LockResult{Mode: l.Mode, Requested: c.t.MySQLLock, AcquiredMS: l.AcquiredMS, BinlogFile: l.BinlogFile, BinlogPos: l.BinlogPos, GTID: l.GTIDExecuted,
		Replication: l.Replication, Restore: l.Restore}
	c.log.Info("frozen", "frozen_at", c.fr.FrozenAt, "lock", l.Mode, "freeze_visible_ms", ms(c.r.Clock.Now().Sub(c.sent)))
	return true
}

func (c *cycle) freezeNotSent(err error, mayHaveRun bool) {
	c.res.errorf("%v", err)
	if !mayHaveRun {
		c.res.fail("freeze not sent: " + err.Error())
		return
	}
	c.res.fail("freeze outcome unknown: " + err.Error())
	c.r.thaw(c.ctx, c.cfg, c.t, &c.res, c.log)
	// Without a command ID the freeze cannot be watched; if SSM took it and
	// delivers it after this thaw, it would hold until hostagent's deadline.
	// Thaw once more at the end of the run.
	c.follow = &FollowUp{target: c.t, after: c.r.Clock.Now(), rethaw: true}
}

func (c *cycle) freezeFailed(err error, cmdID string, noOutcome bool) {
	c.res.errorf("freeze: %v", err)
	c.res.fail("freeze: " + err.Error())
	if freezeMayHold(err) {
		c.r.thaw(c.ctx, c.cfg, c.t, &c.res, c.log)
		if noOutcome {
			// The freeze may still be running (delayed delivery, a slow
			// lock): if it completes after our thaw, it would hold until
			// hostagent's deadline. Watch it and thaw again.
			c.r.chaseFreeze(c.ctx, c.cfg, c.t, &c.res, c.log, cmdID, minTime(c.deadline.Add(5*time.Second), c.r.thawBy(c.ctx)))
		}
	}
	c.log.Warn("freeze failed", "error", err, "thaw_sent", c.res.ThawSent)
}

// pickVolumes decides what to snapshot: every volume behind every mount, or
// none (then it thaws); and fits the rate reservation to them.
func (c *cycle) pickVolumes() bool {
	vols, perVol, err := volumesOf(c.fr, c.t)
	if err != nil {
		c.res.errorf("%v", err)
		c.res.fail(err.Error())
		c.r.thaw(c.ctx, c.cfg, c.t, &c.res, c.log)
		return false
	}
	rctx, cancel := c.r.Clock.WithTimeout(c.ctx, c.windowEnd.Sub(c.r.Clock.Now()))
	err = c.rsv.Resize(rctx, vols)
	cancel()
	if err != nil {
		c.res.errorf("%v", err)
		c.res.fail("snapshot not attempted: " + err.Error())
		c.r.thaw(c.ctx, c.cfg, c.t, &c.res, c.log)
		return false
	}
	c.vols, c.perVol = vols, perVol
	return true
}

// snapshot takes the snapshots inside the window, tagged at creation with
// the verdict known before the call.
func (c *cycle) snapshot() {
	c.evidence = consistency.Evidence{LockRequested: c.t.MySQLLock, LockTaken: c.fr.Lock.Mode,
		FreezeSent: c.sent, FreezeTimeout: c.t.FreezeTimeout, CallsStarted: c.r.Clock.Now()}
	c.created = consistency.Decide(c.evidence)
	tags := baseTags(c.cfg.Stack, c.cfg.RunID, c.t.InstanceID, c.t.Name, c.t.Mounts, c.created.Consistency, c.fr, c.cfg.SnapshotTags)
	if rt := contract.NewRestoreTag(c.fr.Lock.Restore, c.fr.Mounts); len(rt.Unmapped) > 0 {
		// README "Only the listed mounts": files there are in no snapshot.
		c.res.errorf("server files on no listed mount (%s unmapped=%s): the snapshots do not hold them", contract.TagRestore, strings.Join(rt.Unmapped, ","))
	}
	if len(c.created.Notes) > 0 {
		tags[contract.TagNote] = tagvalue.Truncate(c.created.Note())
	}
	// Stop retrying early enough for the thaw to reach the host before its
	// deadline: after the deadline there is nothing left to gain.
	margin := min(2*time.Second, c.t.FreezeTimeout/4)
	c.so = c.r.takeSnapshots(c.ctx, c.t, c.vols, tags, c.perVol, minTime(c.windowEnd, c.deadline.Add(-margin)))
	c.rsv.Spend(c.vols, c.so.firstSent)
	c.res.SnapshotAPI = c.so.api
	c.res.SnapshotCallMS = ms(c.so.lastReturn.Sub(c.so.firstSent))
}

// thaw runs as soon as every snapshot call has returned.
func (c *cycle) thaw() {
	tr, returned := c.r.thaw(c.ctx, c.cfg, c.t, &c.res, c.log)
	c.tr = tr
	c.res.LambdaWindowMS = ms(returned.Sub(c.sent))
	if tr == nil {
		return
	}
	c.res.ThawedBy, c.res.ThawLate = tr.ThawedBy, tr.Late
	c.res.ThawedByDeadline = tr.ThawedBy == contract.ThawedByDeadline
	c.res.LockLost = tr.LockLost
	if !tr.ThawedAt.IsZero() && !c.fr.FrozenAt.IsZero() {
		c.res.WindowMS = ms(tr.ThawedAt.Sub(c.fr.FrozenAt))
	} else {
		c.res.WindowMS = tr.HeldMS
	}
}

// judge reaches the final verdict, now that the calls' outcome and the
// ThawReport are known.
func (c *cycle) judge() {
	ev := c.evidence
	ev.AfterThaw, ev.CallsReturned, ev.Thaw, ev.SetError = true, c.so.lastReturn, c.tr, c.so.err
	c.final = consistency.Decide(ev)
	c.res.ConsistencyNote = tagvalue.Truncate(c.final.Note())
	if c.tr != nil && c.tr.Late {
		// A late thaw keeps the verdict when the calls returned in time
		// (docs/architecture.md#consistency); the long window is reported
		// (and counted in thawed_by_deadline).
		if c.final.Consistency == Application {
			c.res.errorf("thaw arrived after hostagent's deadline (thawed_by %s); snapshot calls had returned within freeze_timeout, so consistency stands", c.tr.ThawedBy)
		} else {
			c.res.errorf("thaw arrived after hostagent's deadline (thawed_by %s)", c.tr.ThawedBy)
		}
	}
}

// tagSnapshots sets what could not be set at creation: per-volume device
// and mounts after a multi-volume call, and the downgrade when the final
// verdict is lower than the one the snapshots were created with. Snapshots
// of calls whose response was lost are found by their tags and tagged too.
func (c *cycle) tagSnapshots() {
	all, orphan := c.unacknowledged()
	if len(all) > 0 {
		c.res.Consistency = c.final.Consistency
	}
	for _, s := range all {
		c.res.Snapshots = append(c.res.Snapshots, c.tagOne(s, orphan[s.id]))
	}
}

// unacknowledged returns every snapshot of the instance in this run: the
// acknowledged ones, plus, after an ambiguous call failure, those it created
// anyway (marked in orphan). EC2 may still process an abandoned call after
// this (the request can wait in its front end): the FollowUp looks again at
// the end of the run.
func (c *cycle) unacknowledged() (all []created, orphan map[string]bool) {
	all = c.so.created
	if !c.so.ambiguous {
		return all, nil
	}
	known := map[string]bool{}
	for _, s := range all {
		known[s.id] = true
	}
	orphans, err := c.r.findOrphans(context.WithoutCancel(c.ctx), c.cfg.RunID, c.t.InstanceID, known)
	if err != nil {
		c.res.errorf("looking for snapshots of failed calls: %v", err)
	}
	orphan = map[string]bool{}
	if len(orphans) > 0 {
		c.res.errorf("%d snapshot(s) created by calls whose response was lost; tagged crash and incomplete", len(orphans))
		for _, o := range orphans {
			orphan[o.id], known[o.id] = true, true
		}
		all = append(all, orphans...)
	}
	c.follow = &FollowUp{target: c.t, after: c.so.lastReturn, orphans: &orphanSearch{known: known, perVol: c.perVol}}
	return all, orphan
}

// tagOne re-tags one snapshot where its tags at creation are not the final
// word, and returns its line in the result.
func (c *cycle) tagOne(s created, orphan bool) SnapshotResult {
	v := c.final
	if orphan {
		v = consistency.Unacknowledged()
	}
	per := c.perVol[s.volume]
	sr := SnapshotResult{SnapshotID: s.id, VolumeID: s.volume, Device: per[contract.TagDevice], Mounts: per[contract.TagMounts], Consistency: v.Consistency, Incomplete: v.Incomplete}
	upd := map[string]string{}
	if c.so.api == APICreateSnapshots || orphan {
		for k, val := range per {
			upd[k] = val
		}
	}
	switch {
	case v.Incomplete:
		// Not part of a complete, acknowledged set: never application.
		upd[contract.TagConsistency] = Crash
		upd[contract.TagIncomplete] = "true"
		upd[contract.TagNote] = tagvalue.Truncate(v.Note())
	case v.Consistency != c.created.Consistency:
		upd[contract.TagConsistency] = v.Consistency
		upd[contract.TagNote] = tagvalue.Truncate(v.Note())
	}
	if len(upd) == 0 {
		return sr
	}
	if err := c.r.tagSnapshot(context.WithoutCancel(c.ctx), s.id, upd); err != nil {
		c.res.errorf("tag %s: %v", s.id, err)
		if upd[contract.TagConsistency] == Crash && c.created.Consistency == Application {
			// The downgrade did not land: the snapshot may still say
			// application. Say so loudly.
			c.res.fail(fmt.Sprintf("could not re-tag %s as crash-consistent: %v", s.id, err))
			sr.Consistency = Application + " (re-tag to crash failed)"
		}
	}
	return sr
}

// finish sets the instance's status from what happened.
func (c *cycle) finish() {
	res := &c.res
	switch {
	case c.so.err != nil:
		res.errorf("%v", c.so.err)
		res.fail("snapshot failed: " + c.so.err.Error())
	case c.tr == nil:
		res.fail("thaw not confirmed; hostagent's deadline thaws at the latest " + c.fr.Deadline.Format(time.RFC3339Nano))
	case c.final.Consistency != Application:
		res.fail("snapshots are crash-consistent only: " + res.ConsistencyNote)
	case res.Status == StatusFailed && res.Reason != "":
		// a failed re-tag or mount thaw already set the reason
	default:
		res.Status = StatusOK
	}
	c.r.emitInstance(c.cfg, res)
	c.log.Info("instance done", "status", res.Status, "consistency", res.Consistency, "window_ms", res.WindowMS, "lambda_window_ms", res.LambdaWindowMS, "snapshot_call_ms", res.SnapshotCallMS, "snapshots", len(res.Snapshots))
}

// chaseFreeze waits for a freeze whose outcome was unknown when we thawed;
// if it turns out to have succeeded after all, it sends thaw again.
func (r *Runner) chaseFreeze(ctx context.Context, cfg *event.Config, t targets.Target, res *InstanceResult, log *slog.Logger, cmdID string, until time.Time) {
	out, err := r.wait(context.WithoutCancel(ctx), cmdID, t.InstanceID, r.Clock.Now().Add(-r.Poll.HotFor), until)
	if err != nil {
		res.errorf("freeze command %s still without a result; hostagent's deadline thaws it at the latest", cmdID)
		return
	}
	if out.Status == ssmtypes.CommandInvocationStatusSuccess {
		log.Warn("freeze completed after our thaw; thawing again", "command_id", cmdID)
		res.errorf("freeze completed after the first thaw; thaw sent again")
		r.thaw(ctx, cfg, t, res, log)
	}
}

// thaw sends thaw and waits for the ThawReport. It runs on a context that
// survives the invocation's cancellation, bounded by thawContextTimeout.
func (r *Runner) thaw(ctx context.Context, cfg *event.Config, t targets.Target, res *InstanceResult, log *slog.Logger) (*contract.ThawReport, time.Time) {
	tctx, cancel := r.Clock.WithTimeout(context.WithoutCancel(ctx), thawContextTimeout)
	defer cancel()
	sendUntil := r.Clock.Now().Add(thawContextTimeout / 2)
	thaw := contract.CommandParams{Action: contract.ActionThaw, RunID: cfg.RunID}
	cmdID, mayHaveRun, err := r.send(tctx, cfg.Document, t.InstanceID, thaw, sendUntil, false)
	returned := r.Clock.Now()
	res.ThawSent = mayHaveRun
	res.ThawCommandID = cmdID
	if err != nil {
		res.errorf("thaw: %v", err)
		log.Error("thaw not sent", "error", err)
		return nil, returned
	}
	sent := r.Clock.Now()
	until := sent.Add(r.ThawWait)
	if rem, ok := clock.Remaining(r.Clock, tctx); ok && sent.Add(rem).Before(until) {
		until = sent.Add(rem)
	}
	out, err := r.wait(tctx, cmdID, t.InstanceID, sent, until)
	var tr *contract.ThawReport
	if err == nil {
		tr, err = parseThaw(out)
	}
	if err != nil {
		res.errorf("thaw: %v", err)
		log.Error("thaw not confirmed", "error", err, "command_id", cmdID)
		return nil, returned
	}
	if tr.Late {
		log.Warn("thaw was late: hostagent's deadline had already thawed", "thawed_by", tr.ThawedBy)
	}
	if ll := tr.LockLost; ll != nil {
		log.Warn("MySQL lock lost during the hold; the snapshots are crash-consistent only", "after_ms", ll.AfterMS, "reason", ll.Reason)
	}
	for _, m := range tr.Mounts {
		if !m.Thawed && m.Error != "" {
			// The run cannot be ok while a mount may still be frozen
			// (hostagent's deadline remains the backstop).
			res.errorf("thaw %s: %s", m.Path, m.Error)
			res.fail(fmt.Sprintf("thaw of %s failed: %s", m.Path, m.Error))
		}
	}
	return tr, returned
}

func (r *Runner) emitInstance(cfg *event.Config, res *InstanceResult) {
	if r.Metrics == nil || res.WindowMS == 0 && res.SnapshotCallMS == 0 {
		return
	}
	_ = r.Metrics.Emit(map[string]any{"run_id": cfg.RunID, "instance_id": res.InstanceID, "consistency": res.Consistency},
		metrics.Metric{Name: "freeze_window_ms", Unit: "Milliseconds", Value: res.WindowMS},
		metrics.Metric{Name: "lambda_window_ms", Unit: "Milliseconds", Value: res.LambdaWindowMS},
		metrics.Metric{Name: "snapshot_call_ms", Unit: "Milliseconds", Value: res.SnapshotCallMS})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
