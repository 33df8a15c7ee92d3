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

	tgts, err := r.resolve(ctx, cfg, res)
	if err != nil {
		return nil, err
	}
	if !cfg.DryRun {
		r.seedLimiter(ctx, cfg)
	}
	res.Instances = append(res.Instances, r.runAll(ctx, cfg, tgts)...)
	sort.SliceStable(res.Instances, func(i, j int) bool { return res.Instances[i].InstanceID < res.Instances[j].InstanceID })

	t := res.tally()
	pruned := r.prune(ctx, cfg, res, t.okVolumes)
	res.FinishedAt = r.Clock.Now().UTC()
	if r.Metrics != nil {
		_ = r.Metrics.Emit(map[string]any{"run_id": cfg.RunID, "dry_run": cfg.DryRun},
			metrics.Metric{Name: "instances_ok", Unit: "Count", Value: float64(res.OK)},
			metrics.Metric{Name: "instances_failed", Unit: "Count", Value: float64(res.Failed)},
			metrics.Metric{Name: "thawed_by_deadline", Unit: "Count", Value: float64(t.thawedByDeadline)},
			metrics.Metric{Name: "snapshots_pruned", Unit: "Count", Value: float64(pruned)})
	}
	log.Info("run done", "ok", res.OK, "failed", res.Failed, "skipped", res.Skipped, "pruned", pruned, "duration_ms", ms(res.FinishedAt.Sub(res.StartedAt)))
	if len(t.failed) > 0 {
		return res, &RunError{Result: res, Failed: t.failed}
	}
	return res, nil
}

// resolve finds the targets and records the excluded instances in res.
func (r *Runner) resolve(ctx context.Context, cfg *event.Config, res *Result) ([]targets.Target, error) {
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
		r.Log.Warn("instance excluded", "run_id", cfg.RunID, "instance", x.InstanceID, "status", st, "reason", x.Reason)
	}
	if len(tgts) == 0 && len(excluded) == 0 {
		return nil, ErrNoTargets
	}
	return tgts, nil
}

// runAll runs the instances on cfg.MaxConcurrency workers, then their
// follow-ups.
func (r *Runner) runAll(ctx context.Context, cfg *event.Config, tgts []targets.Target) []InstanceResult {
	results := make([]InstanceResult, len(tgts))
	follow := make([]*FollowUp, len(tgts))
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(cfg.MaxConcurrency, len(tgts)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i], follow[i] = r.one(ctx, cfg, tgts[i])
			}
		}()
	}
	for i := range tgts {
		work <- i
	}
	close(work)
	wg.Wait()
	r.followUp(ctx, cfg, results, follow)
	return results
}

// tally is what the run's counts and retention need from the results.
type tally struct {
	failed           []string // "i-…: reason"
	thawedByDeadline int
	okVolumes        map[string]bool // volumes of instances that succeeded
}

func (res *Result) tally() tally {
	t := tally{okVolumes: map[string]bool{}}
	for _, in := range res.Instances {
		switch in.Status {
		case StatusOK:
			res.OK++
			for _, s := range in.Snapshots {
				t.okVolumes[s.VolumeID] = true
			}
		case StatusFailed:
			res.Failed++
			t.failed = append(t.failed, in.InstanceID+": "+in.Reason)
		default:
			res.Skipped++
		}
		if in.ThawedByDeadline {
			t.thawedByDeadline++
		}
	}
	return t
}

// prune applies retention, only after snapshots were taken and only for
// this stack. A fully successful run prunes every volume of the stack;
// otherwise only volumes whose instance succeeded now (so a failing
// instance never loses its older snapshots). It returns how many it deleted.
func (r *Runner) prune(ctx context.Context, cfg *event.Config, res *Result, okVolumes map[string]bool) int {
	if cfg.DryRun || (cfg.KeepLast <= 0 && cfg.MaxAge <= 0) {
		return 0
	}
	pol := retention.Policy{Stack: cfg.Stack, RunID: cfg.RunID, KeepLast: cfg.KeepLast, MaxAge: cfg.MaxAge, Now: r.Clock.Now()}
	rr := &RetentionResult{Scope: "stack"}
	res.Retention = rr
	if res.Failed > 0 {
		rr.Scope = "volumes of successful instances"
		pol.Volumes = okVolumes
	}
	if res.OK == 0 {
		rr.Skipped = "no instance succeeded"
		return 0
	}
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
	return len(out.Deleted)
}

// one runs the cycle (or the dry-run check) and turns a panic into a
// failed result, so one instance never takes the fleet down.
func (r *Runner) one(ctx context.Context, cfg *event.Config, t targets.Target) (res InstanceResult, follow *FollowUp) {
	defer func() {
		if p := recover(); p != nil {
			r.Log.Error("panic in instance cycle", "instance", t.InstanceID, "panic", fmt.Sprint(p))
			res, follow = InstanceResult{InstanceID: t.InstanceID, Status: StatusFailed, Reason: fmt.Sprintf("internal error: %v", p)}, nil
		}
	}()
	if cfg.DryRun {
		return r.Check(ctx, cfg, t), nil
	}
	return r.Cycle(ctx, cfg, t)
}

// seedLimiter tells the limiter about this stack's pending snapshots, so a
// run right after another one respects the per-volume rules.
func (r *Runner) seedLimiter(ctx context.Context, cfg *event.Config) {
	r.Limiter.ResetPending()
	in := &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, MaxResults: aws.Int32(1000), Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + contract.TagStack), Values: []string{cfg.Stack}},
		{Name: aws.String("status"), Values: []string{"pending"}},
	}}
	for p := ec2.NewDescribeSnapshotsPaginator(r.EC2, in); p.HasMorePages(); {
		out, err := p.NextPage(ctx)
		if err != nil {
			r.Log.Warn("could not list pending snapshots; relying on EC2's own limits", "error", err)
			return
		}
		for _, s := range out.Snapshots {
			r.Limiter.ObservePending(aws.ToString(s.VolumeId), aws.ToTime(s.StartTime))
		}
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

// FollowUp is work for the end of the run, once EC2 and SSM had time to act
// on requests whose outcome was unknown: a snapshot taken after the thaw
// must not keep the "application" tag it was requested with, and a freeze
// delivered after the thaw must not hold until the deadline.
type FollowUp struct {
	target targets.Target
	after  time.Time // the requests of unknown outcome ended here
	// rethaw: the freeze was sent without getting a command ID back; thaw
	// again in case SSM delivered it after the first thaw.
	rethaw bool
	// orphans: a snapshot call was abandoned; look again for what it created.
	orphans *orphanSearch
}

// orphanSearch is what sweepOrphans needs to find and tag late snapshots.
type orphanSearch struct {
	known  map[string]bool              // snapshot ids already in the result
	perVol map[string]map[string]string // per-volume tags
}

// followUp waits until every follow-up's requests had OrphanSettle to take
// effect (keeping a second of the invocation for the work itself), then
// does them and adds what they found to the results.
func (r *Runner) followUp(ctx context.Context, cfg *event.Config, results []InstanceResult, follow []*FollowUp) {
	var at time.Time
	for _, f := range follow {
		if f != nil && f.after.Add(r.OrphanSettle).After(at) {
			at = f.after.Add(r.OrphanSettle)
		}
	}
	if at.IsZero() {
		return
	}
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
	for i, f := range follow {
		if f != nil {
			r.doFollowUp(sctx, cfg, f, &results[i])
		}
	}
}

func (r *Runner) doFollowUp(ctx context.Context, cfg *event.Config, f *FollowUp, res *InstanceResult) {
	if f.rethaw {
		var again InstanceResult
		tr, _ := r.thaw(ctx, cfg, f.target, &again, r.Log.With("run_id", cfg.RunID, "instance", f.target.InstanceID))
		res.errorf("thaw sent again at the end of the run, in case SSM delivered the freeze late")
		if tr != nil && len(tr.Mounts) > 0 {
			res.errorf("the second thaw released a hold: the freeze had been delivered after the first thaw")
		}
		res.Errors = append(res.Errors, again.Errors...)
	}
	if f.orphans == nil {
		return
	}
	snaps, errs := r.sweepOrphans(ctx, cfg.RunID, f.target.InstanceID, f.orphans.known, f.orphans.perVol)
	res.Errors = append(res.Errors, errs...)
	if len(snaps) > 0 {
		res.Snapshots = append(res.Snapshots, snaps...)
		if res.Consistency == "" {
			res.Consistency = Crash
		}
		r.Log.Warn("snapshots appeared after their call was abandoned; tagged crash", "instance", res.InstanceID, "count", len(snaps))
	}
}
