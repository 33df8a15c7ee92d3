package orchestrate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/clock"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/metrics"
	"github.com/quiesce/quiesce/lambda/internal/retention"
	"github.com/quiesce/quiesce/lambda/internal/targets"
)

// ErrNoTargets: the targets matched no instance at all (an empty fleet is
// almost always a tagging mistake, so the invocation fails).
var ErrNoTargets = errors.New("no instances matched the targets")

// Run executes one invocation: resolve targets, run the cycle on up to
// cfg.MaxConcurrency instances at a time (one failure never stops the
// others), prune, emit metrics. It returns a *RunError when any instance
// failed.
func (r *Runner) Run(ctx context.Context, cfg *event.Config) (*Result, error) {
	res := &Result{RunID: cfg.RunID, Stack: cfg.Stack, DryRun: cfg.DryRun, StartedAt: r.Clock.Now().UTC()}
	log := r.Log.With("run_id", cfg.RunID)
	log.Info("run start", "stack", cfg.Stack, "instance_ids", cfg.InstanceIDs, "target_tags", cfg.TargetTags, "mounts", cfg.Mounts,
		"freeze_timeout", cfg.FreezeTimeout.String(), "max_concurrency", cfg.MaxConcurrency, "dry_run", cfg.DryRun)

	tgts, excluded, err := targets.Resolve(ctx, r.EC2, r.SSM, cfg)
	if err != nil {
		return nil, fmt.Errorf("resolve targets: %w", err)
	}
	for _, x := range excluded {
		st := StatusSkipped
		if x.Failed {
			st = StatusFailed
		}
		res.Instances = append(res.Instances, InstanceResult{InstanceID: x.InstanceID, Status: st, Reason: x.Reason})
		log.Warn("instance excluded", "instance", x.InstanceID, "status", st, "reason", x.Reason)
	}
	if len(tgts) == 0 && len(excluded) == 0 {
		return nil, ErrNoTargets
	}
	if !cfg.DryRun {
		r.seedLimiter(ctx, cfg)
	}

	results := make([]InstanceResult, len(tgts))
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(cfg.MaxConcurrency, len(tgts)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i] = r.one(ctx, cfg, tgts[i])
			}
		}()
	}
	for i := range tgts {
		work <- i
	}
	close(work)
	wg.Wait()
	r.sweepLate(ctx, results)
	res.Instances = append(res.Instances, results...)
	sort.SliceStable(res.Instances, func(i, j int) bool { return res.Instances[i].InstanceID < res.Instances[j].InstanceID })

	var failed []string
	thawedByDeadline := 0
	okVolumes := map[string]bool{}
	for _, in := range res.Instances {
		switch in.Status {
		case StatusOK:
			res.OK++
			for _, s := range in.Snapshots {
				okVolumes[s.VolumeID] = true
			}
		case StatusFailed:
			res.Failed++
			failed = append(failed, in.InstanceID+": "+in.Reason)
		default:
			res.Skipped++
		}
		if in.ThawedByDeadline {
			thawedByDeadline++
		}
	}

	// Retention: only after snapshots were taken, and only for this stack.
	// A fully successful run prunes every volume of the stack; otherwise
	// only volumes whose instance succeeded now (so a failing instance
	// never loses its older snapshots).
	pruned := 0
	if !cfg.DryRun && (cfg.KeepLast > 0 || cfg.MaxAge > 0) {
		pol := retention.Policy{Stack: cfg.Stack, RunID: cfg.RunID, KeepLast: cfg.KeepLast, MaxAge: cfg.MaxAge, Now: r.Clock.Now()}
		rr := &RetentionResult{Scope: "stack"}
		if res.Failed > 0 {
			rr.Scope = "volumes of successful instances"
			pol.Volumes = okVolumes
		}
		if res.OK == 0 {
			rr.Skipped = "no instance succeeded"
		} else {
			rctx := ctx
			if rem, ok := clock.Remaining(r.Clock, ctx); ok {
				var cancel context.CancelFunc
				rctx, cancel = r.Clock.WithTimeout(ctx, max(rem-time.Second, 0))
				defer cancel()
			}
			out, err := retention.Prune(rctx, r.EC2, pol, r.Log.With("run_id", cfg.RunID))
			rr.Pruned, rr.InUse, rr.Errors = out.Deleted, out.InUse, out.Errors
			if err != nil {
				rr.Errors = append(rr.Errors, err.Error())
			}
			pruned = len(out.Deleted)
		}
		res.Retention = rr
	}

	res.FinishedAt = r.Clock.Now().UTC()
	if r.Metrics != nil {
		_ = r.Metrics.Emit(map[string]any{"run_id": cfg.RunID, "dry_run": cfg.DryRun},
			metrics.Metric{Name: "instances_ok", Unit: "Count", Value: float64(res.OK)},
			metrics.Metric{Name: "instances_failed", Unit: "Count", Value: float64(res.Failed)},
			metrics.Metric{Name: "thawed_by_deadline", Unit: "Count", Value: float64(thawedByDeadline)},
			metrics.Metric{Name: "snapshots_pruned", Unit: "Count", Value: float64(pruned)})
	}
	log.Info("run done", "ok", res.OK, "failed", res.Failed, "skipped", res.Skipped, "pruned", pruned, "duration_ms", ms(res.FinishedAt.Sub(res.StartedAt)))
	if len(failed) > 0 {
		return res, &RunError{Result: res, Failed: failed}
	}
	return res, nil
}

// one runs the cycle (or the dry-run check) and turns a panic into a
// failed result, so one instance never takes the fleet down.
func (r *Runner) one(ctx context.Context, cfg *event.Config, t targets.Target) (res InstanceResult) {
	defer func() {
		if p := recover(); p != nil {
			r.Log.Error("panic in instance cycle", "instance", t.InstanceID, "panic", fmt.Sprint(p))
			res = InstanceResult{InstanceID: t.InstanceID, Status: StatusFailed, Reason: fmt.Sprintf("internal error: %v", p)}
		}
	}()
	if cfg.DryRun {
		return r.Check(ctx, cfg, t)
	}
	return r.Cycle(ctx, cfg, t)
}

// seedLimiter tells the limiter about this stack's pending snapshots, so a
// run right after another one respects the per-volume rules.
func (r *Runner) seedLimiter(ctx context.Context, cfg *event.Config) {
	r.Limiter.ResetPending()
	in := &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, MaxResults: aws.Int32(1000), Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + TagStack), Values: []string{cfg.Stack}},
		{Name: aws.String("status"), Values: []string{"pending"}},
	}}
	for {
		out, err := r.EC2.DescribeSnapshots(ctx, in)
		if err != nil {
			r.Log.Warn("could not list pending snapshots; relying on EC2's own limits", "error", err)
			return
		}
		for _, s := range out.Snapshots {
			r.Limiter.ObservePending(aws.ToString(s.VolumeId), aws.ToTime(s.StartTime))
		}
		if aws.ToString(out.NextToken) == "" {
			return
		}
		in.NextToken = out.NextToken
	}
}

// Check runs `hostagent check` (dry run): preflight only, changes nothing.
func (r *Runner) Check(ctx context.Context, cfg *event.Config, t targets.Target) InstanceResult {
	res := InstanceResult{InstanceID: t.InstanceID, Name: t.Name, Status: StatusFailed, Mounts: t.Mounts}
	params := freezeParams(cfg, t)
	params.Action = contract.ActionCheck
	until := r.Clock.Now().Add(60 * time.Second)
	if tb := r.thawBy(ctx); tb.Before(until) {
		until = tb
	}
	sent := r.Clock.Now()
	cmdID, _, err := r.send(ctx, cfg.Document, t.InstanceID, params, until, false)
	if err != nil {
		res.fail("check not sent: " + err.Error())
		return res
	}
	out, err := r.wait(ctx, cmdID, t.InstanceID, sent, until)
	if err != nil {
		res.fail("check: " + err.Error())
		return res
	}
	var cr contract.CheckReport
	if derr := decodeJSON(aws.ToString(out.StandardOutputContent), &cr); derr != nil {
		res.fail(fmt.Sprintf("check [status %s, exit %d]: %s", out.Status, out.ResponseCode, errorMessage(out)))
		return res
	}
	res.Check = &cr
	if !cr.OK || out.ResponseCode != 0 {
		reason := "preflight failed"
		if len(cr.Problems) > 0 {
			reason += ": " + joinNote(cr.Problems)
		}
		res.fail(reason)
		return res
	}
	res.Status = StatusOK
	res.Reason = "dry run: preflight ok"
	return res
}

// sweepLate runs the instances' late sweeps once EC2/SSM had time to
// process requests whose outcome was unknown: a snapshot taken after the
// thaw must not keep the "application" tag it was requested with, and a
// freeze delivered after the thaw must not hold until the deadline.
func (r *Runner) sweepLate(ctx context.Context, results []InstanceResult) {
	var at time.Time
	for _, res := range results {
		if res.lateSweep != nil && res.lateSweep.after.Add(r.OrphanSettle).After(at) {
			at = res.lateSweep.after.Add(r.OrphanSettle)
		}
	}
	if at.IsZero() {
		return
	}
	// Keep a second for the sweep itself before the invocation ends.
	if rem, ok := clock.Remaining(r.Clock, ctx); ok {
		if limit := r.Clock.Now().Add(rem - time.Second); limit.Before(at) {
			at = limit
		}
	}
	if d := at.Sub(r.Clock.Now()); d > 0 {
		_ = r.Clock.Sleep(ctx, d)
	}
	sctx, cancel := r.Clock.WithTimeout(context.WithoutCancel(ctx), thawContextTimeout)
	defer cancel()
	for i := range results {
		ls := results[i].lateSweep
		if ls == nil {
			continue
		}
		results[i].lateSweep = nil
		snaps, errs := ls.find(sctx)
		results[i].Errors = append(results[i].Errors, errs...)
		if len(snaps) > 0 {
			results[i].Snapshots = append(results[i].Snapshots, snaps...)
			if results[i].Consistency == "" {
				results[i].Consistency = Crash
			}
			r.Log.Warn("snapshots appeared after their call was abandoned; tagged crash", "instance", results[i].InstanceID, "count", len(snaps))
		}
	}
}
