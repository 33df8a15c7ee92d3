package verify

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/volumeset"
)

// errTimeUp: the invocation stopped a verification in progress (not a failure).
var errTimeUp = errors.New("invocation time is up")

// stateDone: every volume is gone (in memory only; nothing carries it).
const stateDone = "done"

// job is one verification: a set, its temporary volumes and its progress.
type job struct {
	set       *volumeset.Set
	verifier  string
	started   time.Time
	state     string
	commandID string
	sent      time.Time
	// result and note are set once the outcome is known; force makes the
	// detach forced (hostagent may not have released the volumes).
	result, note string
	force        bool
	ended        time.Time
	// vols: source snapshot ID → its temporary volume (as last described);
	// all: every volume of the job, a stray duplicate included, so that
	// cleanup deletes each one.
	vols   map[string]ec2types.Volume
	all    []ec2types.Volume
	report *contract.VerifyReport
	// snapTagged: the outcome is on the source snapshots (this invocation).
	snapTagged bool
	// notBefore: do not send the command before then (hostagent was busy).
	notBefore time.Time
	// startUnknown: no volume said when it started (a stray volume).
	startUnknown bool
}

func newJob(set *volumeset.Set, verifier string, now time.Time) *job {
	return &job{set: set, verifier: verifier, started: now.UTC().Truncate(time.Second), state: StateCreating, vols: map[string]ec2types.Volume{}}
}

func (j *job) volumeIDs() []string {
	var out []string
	for _, sn := range j.set.Snapshots {
		if v, ok := j.vols[aws.ToString(sn.SnapshotId)]; ok {
			out = append(out, aws.ToString(v.VolumeId))
		}
	}
	return out
}

func (j *job) view(now time.Time) Verification {
	v := Verification{InstanceID: j.set.InstanceID, RunID: j.set.RunID, Snapshots: j.set.IDs(), Volumes: j.volumeIDs(), Verifier: j.verifier,
		State: j.state, CommandID: j.commandID, Report: j.report}
	if !j.ended.IsZero() && !j.startUnknown {
		v.VerifySeconds = j.ended.Sub(j.started).Seconds()
	}
	return v
}

// fail records the outcome failed (the first reason wins).
func (j *job) fail(note string, force bool) {
	if j.result == "" {
		j.result, j.note = ResultFailed, note
	}
	j.force = j.force || force
}

// clientToken makes CreateVolume idempotent for one snapshot of one
// verification, across retries and invocations.
func (j *job) clientToken(snapshotID string) string {
	h := sha256.Sum256([]byte(snapshotID + "|" + j.started.Format(timeFormat)))
	return "quiesce-verify-" + hex.EncodeToString(h[:])[:40]
}

// volumeTags are the tags every temporary volume gets at creation.
func (j *job) volumeTags(stack, snapshotID string) map[string]string {
	return map[string]string{
		"Name":            "quiesce verify " + j.set.InstanceID + " " + j.set.RunID,
		TagStack:          stack,
		TagPurpose:        PurposeVerify,
		TagRunID:          j.set.RunID,
		TagInstance:       j.set.InstanceID,
		TagSourceSnapshot: snapshotID,
		TagVerifier:       j.verifier,
		TagVerifyState:    StateCreating,
		TagVerifyStarted:  j.started.Format(timeFormat),
	}
}

// loadJobs finds the verifications in progress from the stack's verify volumes.
func (r *Runner) loadJobs(ctx context.Context, cfg *Config) ([]*job, error) {
	vols, err := r.stackVolumes(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("list verify volumes of stack %s: %w", cfg.Stack, err)
	}
	byKey := map[string]*job{}
	for _, v := range vols {
		t := tagMap(v.Tags)
		if t[TagStack] != cfg.Stack || t[TagPurpose] != PurposeVerify {
			continue // never anyone else's
		}
		key := t[TagInstance] + "|" + t[TagRunID]
		j := byKey[key]
		if j == nil {
			j = &job{set: &volumeset.Set{InstanceID: t[TagInstance], RunID: t[TagRunID]}, state: t[TagVerifyState], vols: map[string]ec2types.Volume{}}
			byKey[key] = j
		}
		j.merge(t, v)
	}
	jobs := make([]*job, 0, len(byKey))
	for _, key := range sortedKeys(byKey) {
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
	j.vols[t[TagSourceSnapshot]] = v
	j.all = append(j.all, v)
	if o, ok := stateOrder[t[TagVerifyState]]; !ok || o < stateOrder[j.state] {
		j.state = t[TagVerifyState]
		if !ok {
			j.state = StateCreating
		}
	}
	if s, err := time.Parse(timeFormat, t[TagVerifyStarted]); err == nil && (j.started.IsZero() || j.startUnknown || s.Before(j.started)) {
		j.started, j.startUnknown = s, false
	}
	if j.started.IsZero() {
		// A volume without a readable start is treated as started long
		// ago: VerifyMaxHours then makes sure it goes.
		j.started, j.startUnknown = time.Unix(0, 0).UTC(), true
	}
	j.verifier = cmp.Or(j.verifier, t[TagVerifier])
	j.commandID = cmp.Or(j.commandID, t[TagVerifyCommand])
	if s, err := time.Parse(timeFormat, t[TagVerifySent]); err == nil {
		j.sent = s
	}
	if t[TagVerifyResult] != "" && j.result == "" {
		j.result, j.note = t[TagVerifyResult], t[TagVerifyNote]
	}
	if e, err := time.Parse(timeFormat, t[TagVerifyEnded]); err == nil {
		j.ended = e
	}
	j.force = j.force || t[TagVerifyForce] == "true"
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

// advance drives the job's state machine until it is done, the invocation's
// time is up, or a step fails (the next invocation retries it).
func (r *Runner) advance(ctx context.Context, cfg *Config, j *job, until time.Time) error {
	r.checkVerifier(ctx, j)
	for {
		now := r.Clock.Now()
		if j.result == "" && now.Sub(j.started) > cfg.MaxDuration {
			j.fail(fmt.Sprintf("verification exceeded VerifyMaxHours (%s) without an answer", event.Human(cfg.MaxDuration)), true)
		}
		if j.result != "" && j.state != StateCleanup && j.state != stateDone {
			if err := r.recordOutcome(ctx, cfg, j); err != nil {
				return err
			}
		}
		if j.state == stateDone {
			return nil
		}
		if !now.Before(until) {
			return fmt.Errorf("%w in state %s; the next invocation resumes", errTimeUp, j.state)
		}
		progressed, err := r.step(ctx, cfg, j)
		if err != nil {
			return err
		}
		if !progressed {
			if err := r.Clock.Sleep(ctx, min(r.Poll, until.Sub(r.Clock.Now()))); err != nil {
				return err
			}
		}
	}
}

// step runs the current state once; progressed=false means wait and look again.
func (r *Runner) step(ctx context.Context, cfg *Config, j *job) (bool, error) {
	switch j.state {
	case StateCreating:
		return r.createAndAttach(ctx, cfg, j)
	case StateAttached:
		return r.send(ctx, cfg, j)
	case StateRunning:
		return r.poll(ctx, j)
	case StateCleanup:
		return r.cleanup(ctx, cfg, j)
	}
	j.fail("unknown verify state "+j.state, true)
	return true, nil
}
