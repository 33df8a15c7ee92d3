package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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
		j.result, j.note = contract.VerifiedFailed, note
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
		"Name":                     "quiesce verify " + j.set.InstanceID + " " + j.set.RunID,
		contract.TagStack:          stack,
		contract.TagPurpose:        contract.PurposeVerify,
		contract.TagRunID:          j.set.RunID,
		contract.TagInstance:       j.set.InstanceID,
		contract.TagSourceSnapshot: snapshotID,
		contract.TagVerifier:       j.verifier,
		contract.TagVerifyState:    StateCreating,
		contract.TagVerifyStarted:  j.started.Format(timeFormat),
	}
}

// advance drives the job's state machine until it is done, the invocation's
// time is up, or a step fails (the next invocation retries it).
func (r *Runner) advance(ctx context.Context, cfg *Config, j *job, until time.Time) error {
	r.checkVerifier(ctx, j)
	for {
		now := r.Clock.Now()
		if j.result == "" && now.Sub(j.started) > cfg.MaxDuration {
			j.fail(fmt.Sprintf("verification exceeded VerifyMaxHours (%s) without an answer", event.HumanDuration(cfg.MaxDuration)), true)
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
