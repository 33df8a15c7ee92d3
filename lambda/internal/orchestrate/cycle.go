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
	"github.com/quiesce/quiesce/lambda/internal/targets"
)

// thawContextTimeout bounds the thaw when the invocation's own context is
// already done (it runs on context.WithoutCancel).
const thawContextTimeout = 10 * time.Second

// freezeParams are the SSM document parameters for freeze.
func freezeParams(cfg *event.Config, t targets.Target) contract.CommandParams {
	return contract.CommandParams{
		Action:            contract.ActionFreeze,
		RunID:             cfg.RunID,
		Mounts:            t.Mounts,
		MySQLLock:         t.MySQLLock,
		MySQLDefaultsFile: cfg.MySQLDefaultsFile,
		LockWait:          cfg.LockWait,
		LongQueryLimit:    cfg.LongQueryLimit,
		KillLongQueries:   cfg.KillLongQueries,
		Timeout:           t.FreezeTimeout,
	}
}

// Cycle quiesces one instance: freeze, snapshot, thaw, tag. It never
// returns without having sent thaw when the freeze may have happened.
func (r *Runner) Cycle(ctx context.Context, cfg *event.Config, t targets.Target) InstanceResult {
	log := r.Log.With("run_id", cfg.RunID, "instance", t.InstanceID)
	res := InstanceResult{InstanceID: t.InstanceID, Name: t.Name, Status: StatusFailed, Mounts: t.Mounts}

	// Time budget: never start a freeze the invocation cannot see through.
	thawBy := r.thawBy(ctx)
	if budget := thawBy.Sub(r.Clock.Now()); budget < min(r.MinStartBudget, t.FreezeTimeout) {
		res.fail(fmt.Sprintf("not started: only %s left in this invocation", budget.Round(time.Millisecond)))
		return res
	}

	// Pace snapshot creation before freezing, so waiting for EC2's bucket
	// never extends the write-blocked window. The volumes are not known
	// until hostagent reports them; reserve the data volumes (the usual
	// case) and top up inside the window if more are reported.
	estimate := t.DataVolumes()
	if len(estimate) == 0 {
		estimate = t.VolumeOrder
	}
	if err := r.Limiter.Reserve(ctx, estimate); err != nil {
		res.fail("not started: " + err.Error())
		return res
	}
	reserved := map[string]bool{}
	for _, v := range estimate {
		reserved[v] = true
	}
	// Pacing may have waited: check the budget again before freezing.
	thawBy = r.thawBy(ctx)
	if budget := thawBy.Sub(r.Clock.Now()); budget < min(r.MinStartBudget, t.FreezeTimeout) {
		r.Limiter.Release(len(estimate))
		res.fail(fmt.Sprintf("not started: only %s left in this invocation after pacing snapshot creation", budget.Round(time.Millisecond)))
		return res
	}

	// 1. Freeze.
	t0 := r.Clock.Now()
	freezeDeadline := t0.Add(t.FreezeTimeout)
	windowEnd := minTime(freezeDeadline, thawBy)
	cmdID, mayHaveRun, err := r.send(ctx, cfg.Document, t.InstanceID, freezeParams(cfg, t), windowEnd, true)
	res.FreezeSent = mayHaveRun
	res.FreezeCommandID = cmdID
	if err != nil {
		res.errorf("%v", err)
		if !mayHaveRun {
			r.Limiter.Release(len(estimate))
			res.fail("freeze not sent: " + err.Error())
			return res
		}
		res.fail("freeze outcome unknown: " + err.Error())
		r.thaw(ctx, cfg, t, &res, log)
		// Without a command ID the freeze cannot be watched; if SSM took it
		// and delivers it after this thaw, it would hold until hostagent's
		// deadline. Thaw once more at the end of the run.
		res.lateSweep = &lateSweep{after: r.Clock.Now(), find: func(ctx context.Context) ([]SnapshotResult, []string) {
			var again InstanceResult
			tr, _ := r.thaw(ctx, cfg, t, &again, log)
			msgs := []string{"thaw sent again at the end of the run, in case SSM delivered the freeze late"}
			if tr != nil && len(tr.Mounts) > 0 {
				msgs = append(msgs, "the second thaw released a hold: the freeze had been delivered after the first thaw")
			}
			return nil, append(msgs, again.Errors...)
		}}
		return res
	}
	log.Info("freeze sent", "command_id", cmdID)
	out, err := r.wait(ctx, cmdID, t.InstanceID, t0, windowEnd)
	var fr *contract.FreezeReport
	if err == nil {
		fr, err = parseFreeze(out, cfg.RunID)
	}
	if err != nil {
		res.errorf("freeze: %v", err)
		res.fail("freeze: " + err.Error())
		r.Limiter.Release(len(estimate))
		if freezeMayHold(err) {
			r.thaw(ctx, cfg, t, &res, log)
			if out == nil {
				// The freeze may still be running (delayed delivery, a slow
				// lock): if it completes after our thaw, it would hold until
				// hostagent's deadline. Watch it and thaw again.
				r.chaseFreeze(ctx, cfg, t, &res, log, cmdID, minTime(freezeDeadline.Add(5*time.Second), r.thawBy(ctx)))
			}
		}
		log.Warn("freeze failed", "error", err, "thaw_sent", res.ThawSent)
		return res
	}
	res.Lock = &LockResult{Mode: fr.Lock.Mode, Requested: t.MySQLLock, AcquiredMS: fr.Lock.AcquiredMS, BinlogFile: fr.Lock.BinlogFile, BinlogPos: fr.Lock.BinlogPos, GTID: fr.Lock.GTIDExecuted}
	log.Info("frozen", "frozen_at", fr.FrozenAt, "lock", fr.Lock.Mode, "freeze_visible_ms", ms(r.Clock.Now().Sub(t0)))

	// 2. Which volumes: every volume behind every mount, or none.
	vols, perVol, verr := volumesOf(fr, t)
	if verr != nil {
		res.errorf("%v", verr)
		res.fail(verr.Error())
		r.Limiter.Release(len(estimate))
		r.thaw(ctx, cfg, t, &res, log)
		return res
	}
	var extra []string
	for _, v := range vols {
		if !reserved[v] {
			extra = append(extra, v)
		}
	}
	if unused := len(estimate) - (len(vols) - len(extra)); unused > 0 {
		r.Limiter.Release(unused)
	}
	if len(extra) > 0 {
		rctx, cancel := r.Clock.WithTimeout(ctx, windowEnd.Sub(r.Clock.Now()))
		err := r.Limiter.Reserve(rctx, extra)
		cancel()
		if err != nil {
			res.errorf("rate limit for %v: %v", extra, err)
			res.fail("snapshot not attempted: " + err.Error())
			r.thaw(ctx, cfg, t, &res, log)
			return res
		}
	}
	ev := consistency.Evidence{LockRequested: t.MySQLLock, LockTaken: fr.Lock.Mode, FreezeSent: t0, FreezeTimeout: t.FreezeTimeout, CallsStarted: r.Clock.Now()}
	created := consistency.Decide(ev)

	// 3. Snapshot, inside the window, tagged with what is known now.
	tags := baseTags(cfg.Stack, cfg.RunID, t.InstanceID, t.Name, t.Mounts, created.Consistency, fr, cfg.SnapshotTags)
	if len(created.Notes) > 0 {
		tags[TagNote] = truncateValue(created.Note())
	}
	// Stop retrying early enough for the thaw to reach the host before its
	// deadline: after the deadline there is nothing left to gain.
	margin := min(2*time.Second, t.FreezeTimeout/4)
	so := r.takeSnapshots(ctx, t, vols, tags, perVol, minTime(windowEnd, freezeDeadline.Add(-margin)))
	r.Limiter.Created(vols, so.firstSent)

	// 4. Thaw as soon as every snapshot call has returned.
	tr, thawReturned := r.thaw(ctx, cfg, t, &res, log)
	res.LambdaWindowMS = ms(thawReturned.Sub(t0))

	res.SnapshotAPI = so.api
	res.SnapshotCallMS = ms(so.lastReturn.Sub(so.firstSent))
	ev.AfterThaw, ev.CallsReturned, ev.Thaw, ev.SetError = true, so.lastReturn, tr, so.err
	final := consistency.Decide(ev)
	if tr != nil && tr.Late {
		// A late thaw keeps the verdict when the calls returned in time
		// (docs/architecture.md#consistency); the long window is reported
		// (and counted in thawed_by_deadline).
		if final.Consistency == Application {
			res.errorf("thaw arrived after hostagent's deadline (thawed_by %s); snapshot calls had returned within freeze_timeout, so consistency stands", tr.ThawedBy)
		} else {
			res.errorf("thaw arrived after hostagent's deadline (thawed_by %s)", tr.ThawedBy)
		}
	}
	if tr != nil {
		res.LockLost = tr.LockLost
		res.ThawedBy, res.ThawLate = tr.ThawedBy, tr.Late
		res.ThawedByDeadline = tr.ThawedBy == contract.ThawedByDeadline
		if !tr.ThawedAt.IsZero() && !fr.FrozenAt.IsZero() {
			res.WindowMS = ms(tr.ThawedAt.Sub(fr.FrozenAt))
		} else {
			res.WindowMS = tr.HeldMS
		}
	}

	// 5. Tags after the window: per-volume device/mounts for the
	// multi-volume call, and the downgrade when the window did not hold.
	known := map[string]bool{}
	for _, c := range so.created {
		known[c.id] = true
	}
	all := so.created
	orphan := map[string]bool{}
	if so.ambiguous {
		orphans, err := r.findOrphans(context.WithoutCancel(ctx), cfg.RunID, t.InstanceID, known)
		if err != nil {
			res.errorf("looking for snapshots of failed calls: %v", err)
		}
		if len(orphans) > 0 {
			res.errorf("%d snapshot(s) created by calls whose response was lost; tagged crash and incomplete", len(orphans))
			for _, o := range orphans {
				orphan[o.id] = true
			}
			all = append(all, orphans...)
		}
	}
	if so.ambiguous {
		// EC2 may still process an abandoned call after this (the request
		// can wait in its front end): Run sweeps again once it had time to.
		for _, o := range all {
			known[o.id] = true
		}
		res.lateSweep = &lateSweep{after: so.lastReturn, find: func(ctx context.Context) ([]SnapshotResult, []string) {
			return r.sweepOrphans(ctx, cfg.RunID, t.InstanceID, known, perVol)
		}}
	}
	res.ConsistencyNote = truncateValue(final.Note())
	if len(all) > 0 {
		res.Consistency = final.Consistency
	}
	for _, c := range all {
		upd := map[string]string{}
		if so.api == APICreateSnapshots || orphan[c.id] {
			for k, v := range perVol[c.volume] {
				upd[k] = v
			}
		}
		v := final
		if orphan[c.id] {
			v = consistency.Unacknowledged()
		}
		sr := SnapshotResult{SnapshotID: c.id, VolumeID: c.volume, Device: perVol[c.volume][TagDevice], Mounts: perVol[c.volume][TagMounts], Consistency: v.Consistency, Incomplete: v.Incomplete}
		switch {
		case v.Incomplete:
			// Not part of a complete, acknowledged set: never application.
			upd[TagConsistency] = Crash
			upd[TagIncomplete] = "true"
			upd[TagNote] = truncateValue(v.Note())
		case v.Consistency != created.Consistency:
			upd[TagConsistency] = v.Consistency
			upd[TagNote] = truncateValue(v.Note())
		}
		if len(upd) > 0 {
			if err := r.tagSnapshot(context.WithoutCancel(ctx), c.id, upd); err != nil {
				res.errorf("tag %s: %v", c.id, err)
				if upd[TagConsistency] == Crash && created.Consistency == Application {
					// The downgrade did not land: the snapshot may still
					// say application. Say so loudly.
					res.fail(fmt.Sprintf("could not re-tag %s as crash-consistent: %v", c.id, err))
					sr.Consistency = Application + " (re-tag to crash failed)"
				}
			}
		}
		res.Snapshots = append(res.Snapshots, sr)
	}

	switch {
	case so.err != nil:
		res.errorf("%v", so.err)
		res.fail("snapshot failed: " + so.err.Error())
	case tr == nil:
		res.fail("thaw not confirmed; hostagent's deadline thaws at the latest " + fr.Deadline.Format(time.RFC3339Nano))
	case final.Consistency != Application:
		res.fail("snapshots are crash-consistent only: " + res.ConsistencyNote)
	case res.Status == StatusFailed && res.Reason != "":
		// a failed re-tag or mount thaw already set the reason
	default:
		res.Status = StatusOK
	}
	r.emitInstance(cfg, &res)
	log.Info("instance done", "status", res.Status, "consistency", res.Consistency, "window_ms", res.WindowMS, "lambda_window_ms", res.LambdaWindowMS, "snapshot_call_ms", res.SnapshotCallMS, "snapshots", len(res.Snapshots))
	return res
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

// volumesOf maps the FreezeReport's mounts to the volumes to snapshot, in
// a stable order, and the per-volume tags (device and the mounts it backs).
func volumesOf(fr *contract.FreezeReport, t targets.Target) ([]string, map[string]map[string]string, error) {
	var vols []string
	mountsOf := map[string][]string{}
	hostDevice := map[string]string{}
	for _, m := range fr.Mounts {
		ids := m.VolumeIDs
		if len(ids) == 0 && len(m.EC2Devices) > 0 {
			// Xen instances: hostagent knows only EC2 device names (from
			// IMDS); the block device mappings say which volume each is.
			var err error
			if ids, err = volumesByDevice(m, t); err != nil {
				return nil, nil, err
			}
		}
		if len(ids) == 0 {
			return nil, nil, fmt.Errorf("mount %s (device %s) has no EBS volume ID: cannot snapshot it", m.Path, m.Device)
		}
		for _, v := range ids {
			hostDevice[v] = m.Device
			// With no block device mappings at all (EC2 did not say), trust
			// hostagent; otherwise a volume EC2 does not list is a mismatch.
			if _, attached := t.Volumes[v]; !attached && len(t.Volumes) > 0 {
				return nil, nil, fmt.Errorf("mount %s is on volume %s, which EC2 does not list as attached to %s", m.Path, v, t.InstanceID)
			}
			if _, seen := mountsOf[v]; !seen {
				vols = append(vols, v)
			}
			mountsOf[v] = append(mountsOf[v], m.Path)
		}
	}
	per := map[string]map[string]string{}
	for _, v := range vols {
		dev := t.Volumes[v]
		if dev == "" {
			dev = hostDevice[v]
		}
		per[v] = map[string]string{TagDevice: dev, TagMounts: truncateValue(strings.Join(mountsOf[v], ","))}
	}
	return vols, per, nil
}

// volumesByDevice maps a mount's EC2 device names to the attached volumes.
// Names are compared without "/dev/" and with Xen's "xvd" read as "sd", as
// EC2 maps /dev/sdf to xvdf inside the guest.
func volumesByDevice(m contract.MountReport, t targets.Target) ([]string, error) {
	norm := func(dev string) string {
		dev = strings.TrimPrefix(dev, "/dev/")
		if rest, ok := strings.CutPrefix(dev, "xvd"); ok {
			dev = "sd" + rest
		}
		return dev
	}
	byDevice := map[string]string{}
	for vol, dev := range t.Volumes {
		byDevice[norm(dev)] = vol
	}
	var ids []string
	for _, dev := range m.EC2Devices {
		vol, ok := byDevice[norm(dev)]
		if !ok {
			return nil, fmt.Errorf("mount %s is on EC2 device %s, which no block device mapping of %s names", m.Path, dev, t.InstanceID)
		}
		ids = append(ids, vol)
	}
	return ids, nil
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
