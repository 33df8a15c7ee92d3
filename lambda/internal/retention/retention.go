// Package retention prunes old snapshots of one stack, and only of that
// stack: it lists snapshots owned by this account carrying the stack's
// quiesce:stack tag (the same tag the IAM policy's DeleteSnapshot condition
// keys on), groups them per volume and deletes what no rule keeps.
//
// Rules (a snapshot is kept if ANY rule keeps it, like restic's keep
// options, so combining rules never deletes more than either alone):
//   - keep_last N: the N newest completed, complete snapshots of the
//     volume (pending or errored ones and those tagged
//     quiesce:incomplete=true do not count, so this run's still-pending
//     snapshot never pushes out the last restorable one);
//   - max_age D: snapshots younger than D;
//   - always: this run's snapshots and snapshots still pending.
//
// Snapshots in use (InvalidSnapshot.InUse: an AMI references them) are
// skipped and reported; already-deleted ones are ignored. Snapshots a
// verification is restoring right now (a volume of this stack tagged
// quiesce:purpose=verify was created from them) are never deleted: the
// verification tags its outcome on them.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
)

// The SDK client lists volumes; a narrower EC2 that does not (a test fake)
// has no verification to protect.
var _ awsapi.VolumeLister = (*ec2.Client)(nil)

// Policy is one retention pass.
type Policy struct {
	Stack    string
	RunID    string // this run: never pruned
	KeepLast int
	MaxAge   time.Duration
	Now      time.Time
	// Volumes restricts pruning to these volumes; nil means every volume of the stack.
	Volumes map[string]bool
}

// Outcome lists what happened.
type Outcome struct {
	Deleted []string
	InUse   []string
	// Verifying: kept because a verification is restoring them.
	Verifying []string
	Errors    []string
}

// Plan returns the snapshot IDs the policy deletes from snaps (pure; tested
// on its own).
func Plan(p Policy, snaps []ec2types.Snapshot) []string {
	if p.KeepLast <= 0 && p.MaxAge <= 0 {
		return nil
	}
	byVol := map[string][]ec2types.Snapshot{}
	for _, s := range snaps {
		tags := tagMap(s.Tags)
		if tags[contract.TagStack] != p.Stack {
			continue // never anyone else's, even if a filter misbehaved
		}
		v := aws.ToString(s.VolumeId)
		if p.Volumes != nil && !p.Volumes[v] {
			continue
		}
		byVol[v] = append(byVol[v], s)
	}
	var del []string
	for _, v := range slices.Sorted(maps.Keys(byVol)) {
		list := byVol[v]
		sort.SliceStable(list, func(i, j int) bool { return aws.ToTime(list[i].StartTime).After(aws.ToTime(list[j].StartTime)) })
		rank := 0
		for _, s := range list {
			tags := tagMap(s.Tags)
			// Only a completed, complete snapshot can stand in for the ones
			// pruned: a pending one (this run's are) may still end in error.
			counts := tags[contract.TagIncomplete] != "true" && s.State == ec2types.SnapshotStateCompleted
			keep := tags[contract.TagRunID] == p.RunID || s.State == ec2types.SnapshotStatePending
			if counts {
				if p.KeepLast > 0 && rank < p.KeepLast {
					keep = true
				}
				rank++
			}
			if p.MaxAge > 0 && p.Now.Sub(aws.ToTime(s.StartTime)) <= p.MaxAge {
				keep = true
			}
			if !keep {
				del = append(del, aws.ToString(s.SnapshotId))
			}
		}
	}
	return del
}

// Prune lists the stack's snapshots and deletes what Plan selects.
func Prune(ctx context.Context, e awsapi.EC2, p Policy, log *slog.Logger) (Outcome, error) {
	var out Outcome
	in := &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, MaxResults: aws.Int32(1000),
		Filters: []ec2types.Filter{{Name: aws.String("tag:" + contract.TagStack), Values: []string{p.Stack}}}}
	var all []ec2types.Snapshot
	// A failed NextPage leaves the paginator on the same page, so retrying it
	// asks for that page again.
	for pages := ec2.NewDescribeSnapshotsPaginator(e, in); pages.HasMorePages(); {
		o, err := withRetry(ctx, func() (*ec2.DescribeSnapshotsOutput, error) { return pages.NextPage(ctx) })
		if err != nil {
			return out, fmt.Errorf("list snapshots of stack %s: %w", p.Stack, err)
		}
		all = append(all, o.Snapshots...)
	}
	verifying, err := verifySources(ctx, e, p.Stack)
	if err != nil {
		return out, err
	}
	for _, id := range Plan(p, all) {
		if verifying[id] {
			out.Verifying = append(out.Verifying, id)
			log.Info("snapshot kept: a verification is restoring it", "snapshot", id)
			continue
		}
		if ctx.Err() != nil {
			out.Errors = append(out.Errors, "stopped: invocation time is up")
			break
		}
		_, err := withRetry(ctx, func() (*ec2.DeleteSnapshotOutput, error) {
			return e.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)})
		})
		switch {
		case err == nil:
			out.Deleted = append(out.Deleted, id)
			log.Info("snapshot pruned", "snapshot", id)
		case awsapi.IsSnapshotInUse(err):
			out.InUse = append(out.InUse, id)
			log.Warn("snapshot in use (e.g. by an AMI); not pruned", "snapshot", id)
		case awsapi.IsSnapshotNotFound(err):
			// already gone
		default:
			out.Errors = append(out.Errors, fmt.Sprintf("delete %s: %v", id, err))
			log.Error("prune failed", "snapshot", id, "error", err)
		}
	}
	return out, nil
}

// verifySources returns the snapshots this stack's verify volumes were
// created from. Listing them failing stops the pass: deleting blind could
// pull a snapshot from under a verification.
func verifySources(ctx context.Context, e awsapi.EC2, stack string) (map[string]bool, error) {
	vl, ok := e.(awsapi.VolumeLister)
	if !ok {
		return nil, nil
	}
	in := &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + contract.TagStack), Values: []string{stack}},
		{Name: aws.String("tag:" + contract.TagPurpose), Values: []string{contract.PurposeVerify}},
	}}
	out := map[string]bool{}
	for pages := ec2.NewDescribeVolumesPaginator(vl, in); pages.HasMorePages(); {
		// A failed page leaves the paginator where it was, so it may be asked again.
		o, err := withRetry(ctx, func() (*ec2.DescribeVolumesOutput, error) { return pages.NextPage(ctx) })
		if err != nil {
			return nil, fmt.Errorf("list verify volumes of stack %s (nothing pruned): %w", stack, err)
		}
		for _, v := range o.Volumes {
			if id := aws.ToString(v.SnapshotId); id != "" {
				out[id] = true
			}
		}
	}
	return out, nil
}

// withRetry retries throttling and 5xx a few times (outside any window).
func withRetry[T any](ctx context.Context, f func() (T, error)) (T, error) {
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		v, err := f()
		if err == nil || !awsapi.IsRetryable(err) || attempt == 5 {
			return v, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		delay *= 2
	}
}

func tagMap(tags []ec2types.Tag) map[string]string { return awsapi.TagMap(tags) }
