package orchestrate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/lambda/internal/consistency"
	"github.com/quiesce/quiesce/lambda/internal/ssmrun"
	"github.com/quiesce/quiesce/lambda/internal/tagvalue"
	"github.com/quiesce/quiesce/lambda/internal/targets"
)

// Snapshot API names in results.
const (
	APICreateSnapshots = "CreateSnapshots"
	APICreateSnapshot  = "CreateSnapshot"
)

type created struct {
	id, volume string
}

// snapOutcome is what the snapshot phase did inside the window.
type snapOutcome struct {
	api        string
	created    []created
	firstSent  time.Time
	lastReturn time.Time
	err        error
	// ambiguous: some call failed in a way that may still have created
	// snapshots we were not told about.
	ambiguous bool
}

// Retry policies inside the window; all bounded by the freeze deadline.
var (
	throttleRetry  = retryPolicy{base: 100 * time.Millisecond, cap: 2 * time.Second}
	perVolumeRetry = retryPolicy{base: time.Second, cap: 5 * time.Second}
)

// snapshotRetry backs off faster for the bucket than for the per-volume
// limits, which do not clear in milliseconds.
var snapshotRetry = retryPolicy{base: throttleRetry.base, cap: throttleRetry.cap, adapt: func(err error) retryPolicy {
	if awsapi.IsPerVolumeLimit(err) {
		return perVolumeRetry
	}
	return throttleRetry
}}

// snapshotCall retries one snapshot API call until `until`, recording
// whether any failure may have created snapshots anyway.
func (r *Runner) snapshotCall(ctx context.Context, until time.Time, amb *bool, f func(ctx context.Context) error) error {
	return r.retry(ctx, until, snapshotRetry, func(ctx context.Context) error {
		err := f(ctx)
		if err != nil && awsapi.IsAmbiguous(err) {
			*amb = true
		}
		return err
	})
}

// takeSnapshots snapshots vols of t with tags, preferring one CreateSnapshots
// call (a crash-consistent multi-volume set; one API call inside the
// window) and falling back to concurrent CreateSnapshot calls when
// CreateSnapshots is refused. Single volumes use CreateSnapshot directly so
// their device/mount tags are complete at creation.
func (r *Runner) takeSnapshots(ctx context.Context, t targets.Target, vols []string, tags map[string]string, perVolTags map[string]map[string]string, until time.Time) snapOutcome {
	out := snapOutcome{firstSent: r.Clock.Now()}
	// CreateSnapshots needs the instance's volume list to exclude the
	// others; without block device mappings use CreateSnapshot per volume.
	if len(vols) > 1 && len(t.Volumes) > 0 {
		out.api = APICreateSnapshots
		err := r.createSnapshots(ctx, t, vols, tags, until, &out)
		if err == nil || !awsapi.IsMultiVolumeUnusable(err) || out.ambiguous {
			out.err = err
			out.lastReturn = r.Clock.Now()
			return out
		}
		r.Log.Warn("CreateSnapshots refused; falling back to CreateSnapshot per volume", "instance", t.InstanceID, "error", err)
	}
	out.api = APICreateSnapshot
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for _, v := range vols {
		wg.Add(1)
		go func(v string) {
			defer wg.Done()
			vt := map[string]string{}
			for k, val := range tags {
				vt[k] = val
			}
			for k, val := range perVolTags[v] {
				vt[k] = val
			}
			var amb bool
			var id string
			err := r.snapshotCall(ctx, until, &amb, func(ctx context.Context) error {
				o, err := r.EC2.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{
					VolumeId:          aws.String(v),
					Description:       aws.String(description(tags, t)),
					TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSnapshot, Tags: ec2Tags(vt)}},
				}, awsapi.NoSDKRetry)
				if err != nil {
					return err
				}
				id = aws.ToString(o.SnapshotId)
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			if amb {
				out.ambiguous = true
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("CreateSnapshot %s: %w", v, err))
				return
			}
			out.created = append(out.created, created{id: id, volume: v})
		}(v)
	}
	wg.Wait()
	out.lastReturn = r.Clock.Now()
	sortCreated(out.created)
	out.err = errors.Join(errs...)
	return out
}

func (r *Runner) createSnapshots(ctx context.Context, t targets.Target, vols []string, tags map[string]string, until time.Time, out *snapOutcome) error {
	want := map[string]bool{}
	for _, v := range vols {
		want[v] = true
	}
	spec := &ec2types.InstanceSpecification{InstanceId: aws.String(t.InstanceID), ExcludeBootVolume: aws.Bool(!want[t.RootVolumeID])}
	for _, v := range t.VolumeOrder {
		if !want[v] && v != t.RootVolumeID {
			spec.ExcludeDataVolumeIds = append(spec.ExcludeDataVolumeIds, v)
		}
	}
	in := &ec2.CreateSnapshotsInput{
		InstanceSpecification: spec,
		Description:           aws.String(description(tags, t)),
		TagSpecifications:     []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSnapshot, Tags: ec2Tags(tags)}},
	}
	var got []ec2types.SnapshotInfo
	err := r.snapshotCall(ctx, until, &out.ambiguous, func(ctx context.Context) error {
		o, err := r.EC2.CreateSnapshots(ctx, in, awsapi.NoSDKRetry)
		if err != nil {
			return err
		}
		got = o.Snapshots
		return nil
	})
	if err != nil {
		return fmt.Errorf("CreateSnapshots: %w", err)
	}
	seen := map[string]bool{}
	for _, s := range got {
		v := aws.ToString(s.VolumeId)
		out.created = append(out.created, created{id: aws.ToString(s.SnapshotId), volume: v})
		seen[v] = true
	}
	sortCreated(out.created)
	var missing, extra []string
	for _, v := range vols {
		if !seen[v] {
			missing = append(missing, v)
		}
	}
	for v := range seen {
		if !want[v] {
			extra = append(extra, v)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("CreateSnapshots returned a different volume set: missing %v, unexpected %v", missing, extra)
	}
	return nil
}

func description(tags map[string]string, t targets.Target) string {
	return ssmrun.Truncate(fmt.Sprintf("quiesce %s run %s instance %s", tags[contract.TagStack], tags[contract.TagRunID], t.InstanceID), 255)
}

func sortCreated(c []created) {
	sort.Slice(c, func(i, j int) bool { return c[i].volume < c[j].volume })
}

// tagSnapshot sets tags on one snapshot after the window, retrying
// throttling generously (the window is closed; only the invocation
// deadline bounds it).
func (r *Runner) tagSnapshot(ctx context.Context, id string, tags map[string]string) error {
	until := r.Clock.Now().Add(20 * time.Second)
	if dl := r.thawBy(ctx).Add(r.ThawReserve - time.Second); dl.Before(until) {
		until = dl
	}
	return r.retry(ctx, until, throttleRetry, func(ctx context.Context) error {
		_, err := r.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: ec2Tags(tags)})
		return err
	})
}

// findOrphans lists snapshots tagged with this run and instance that the
// Lambda was not told about (a call whose response was lost).
func (r *Runner) findOrphans(ctx context.Context, runID, instanceID string, known map[string]bool) ([]created, error) {
	in := &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + contract.TagRunID), Values: []string{runID}},
		{Name: aws.String("tag:" + contract.TagInstance), Values: []string{instanceID}},
	}}
	var out []created
	for p := ec2.NewDescribeSnapshotsPaginator(r.EC2, in); p.HasMorePages(); {
		o, err := p.NextPage(ctx)
		if err != nil {
			return out, err
		}
		for _, s := range o.Snapshots {
			if id := aws.ToString(s.SnapshotId); !known[id] {
				out = append(out, created{id: id, volume: aws.ToString(s.VolumeId)})
			}
		}
	}
	return out, nil
}

func joinNote(notes []string) string {
	return tagvalue.Truncate(strings.Join(notes, "; "))
}

// sweepOrphans finds snapshots of runID/instanceID not in known, tags them
// crash and incomplete, and returns them (and any errors) for the result.
func (r *Runner) sweepOrphans(ctx context.Context, runID, instanceID string, known map[string]bool, perVol map[string]map[string]string) ([]SnapshotResult, []string) {
	orphans, err := r.findOrphans(ctx, runID, instanceID, known)
	var errs []string
	if err != nil {
		errs = append(errs, fmt.Sprintf("looking again for snapshots of failed calls: %v", err))
	}
	var out []SnapshotResult
	for _, o := range orphans {
		known[o.id] = true
		v := consistency.Unacknowledged()
		upd := map[string]string{contract.TagConsistency: v.Consistency, contract.TagIncomplete: "true", contract.TagNote: v.Note()}
		for k, v := range perVol[o.volume] {
			upd[k] = v
		}
		sr := SnapshotResult{SnapshotID: o.id, VolumeID: o.volume, Device: perVol[o.volume][contract.TagDevice], Mounts: perVol[o.volume][contract.TagMounts], Consistency: v.Consistency, Incomplete: v.Incomplete}
		if err := r.tagSnapshot(ctx, o.id, upd); err != nil {
			errs = append(errs, fmt.Sprintf("tag %s: %v", o.id, err))
			sr.Consistency = "unknown (re-tag to crash failed)"
		}
		out = append(out, sr)
	}
	if len(out) > 0 {
		errs = append(errs, fmt.Sprintf("%d snapshot(s) appeared after the run gave up on their call; tagged crash and incomplete", len(out)))
	}
	return out, errs
}
