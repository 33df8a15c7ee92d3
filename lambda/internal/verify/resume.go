package verify

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/volumeset"
)

// The verifications in progress live in the tags of their volumes; an
// invocation reads them back first (docs/architecture.md, "Restore
// verification").

// loadJobs finds the verifications in progress from the stack's verify volumes.
func (r *Runner) loadJobs(ctx context.Context, cfg *Config) ([]*job, error) {
	vols, err := r.stackVolumes(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("list verify volumes of stack %s: %w", cfg.Stack, err)
	}
	byKey := map[string]*job{}
	for _, v := range vols {
		t := tagMap(v.Tags)
		if t[contract.TagStack] != cfg.Stack || t[contract.TagPurpose] != contract.PurposeVerify {
			continue // never anyone else's
		}
		key := t[contract.TagInstance] + "|" + t[contract.TagRunID]
		j := byKey[key]
		if j == nil {
			j = &job{set: &volumeset.Set{InstanceID: t[contract.TagInstance], RunID: t[contract.TagRunID]}, state: t[contract.TagVerifyState], vols: map[string]ec2types.Volume{}}
			byKey[key] = j
		}
		j.merge(t, v)
	}
	jobs := make([]*job, 0, len(byKey))
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		j := byKey[key]
		if err := r.loadSet(ctx, cfg, j); err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].started.Before(jobs[b].started) })
	return jobs, nil
}

// merge takes one volume's tags into the job: the least advanced state (a
// crash between two tag calls leaves the rest behind), the earliest start
// and any recorded command or outcome.
func (j *job) merge(t map[string]string, v ec2types.Volume) {
	j.vols[t[contract.TagSourceSnapshot]] = v
	j.all = append(j.all, v)
	if o, ok := stateOrder[t[contract.TagVerifyState]]; !ok || o < stateOrder[j.state] {
		j.state = t[contract.TagVerifyState]
		if !ok {
			j.state = StateCreating
		}
	}
	if s, err := time.Parse(timeFormat, t[contract.TagVerifyStarted]); err == nil && (j.started.IsZero() || j.startUnknown || s.Before(j.started)) {
		j.started, j.startUnknown = s, false
	}
	if j.started.IsZero() {
		// A volume without a readable start is treated as started long
		// ago: VerifyMaxHours then makes sure it goes.
		j.started, j.startUnknown = time.Unix(0, 0).UTC(), true
	}
	j.verifier = cmp.Or(j.verifier, t[contract.TagVerifier])
	j.commandID = cmp.Or(j.commandID, t[contract.TagVerifyCommand])
	if s, err := time.Parse(timeFormat, t[contract.TagVerifySent]); err == nil {
		j.sent = s
	}
	if t[contract.TagVerifyResult] != "" && j.result == "" {
		j.result, j.note = t[contract.TagVerifyResult], t[contract.TagVerifyNote]
	}
	if e, err := time.Parse(timeFormat, t[contract.TagVerifyEnded]); err == nil {
		j.ended = e
	}
	j.force = j.force || t[contract.TagVerifyForce] == "true"
}

// loadSet reads the job's source snapshots; a set that is gone fails the job.
func (r *Runner) loadSet(ctx context.Context, cfg *Config, j *job) error {
	set, err := r.runSet(ctx, cfg, j.set.InstanceID, j.set.RunID)
	if err != nil {
		return err
	}
	if set == nil || len(set.Snapshots) == 0 {
		// Keep the volumes' own view so they are still cleaned up.
		for snap := range j.vols {
			if snap != "" {
				j.set.Snapshots = append(j.set.Snapshots, ec2types.Snapshot{SnapshotId: aws.String(snap)})
			}
		}
		sort.Slice(j.set.Snapshots, func(a, b int) bool {
			return aws.ToString(j.set.Snapshots[a].SnapshotId) < aws.ToString(j.set.Snapshots[b].SnapshotId)
		})
		note := "the source snapshots of run " + j.set.RunID + " are gone"
		if j.set.RunID == "" {
			note = "a verify volume of this stack names no source run"
		}
		j.fail(note, true)
		return nil
	}
	j.set.Snapshots = set.Snapshots
	return nil
}
