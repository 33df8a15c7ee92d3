// Package verify is the Lambda's verify action: it proves that snapshot sets
// restore. For each targeted instance it takes the newest complete,
// application-consistent, completed set not yet verified (or the sets of an
// explicit run), creates a volume from each snapshot in the verifier's
// Availability Zone, attaches them to the verifier (an instance tagged
// quiesce:role=<verifier tag>, running and online in SSM), runs
// `hostagent verify` there through the verify document, detaches and deletes
// the volumes, and tags the source snapshots quiesce:verified=ok|failed.
//
// A verification can take hours; an invocation never waits past its own
// deadline. Progress lives in tags on the temporary volumes
// (quiesce:verify-state, -command, -started …), so the next invocation finds
// them and carries on. Every temporary volume is deleted in the end — after
// success, failure, a dead verifier or a lost command — and none outlives
// Config.MaxDuration: past it the set is tagged failed with that reason and
// the volumes are force-detached and deleted.
//
// One verification runs at a time (hostagent verify is exclusive on a
// verifier); an invocation resumes what is in progress first and starts the
// next set only when nothing is.
package verify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/clock"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/lambda/internal/metrics"
	"github.com/quiesce/quiesce/lambda/internal/volumeset"
)

// ErrNoVerifier: no instance can verify (nothing is tagged as a verifier, or
// none is running and online in SSM).
var ErrNoVerifier = errors.New("no verifier")

// Runner runs the verify action.
type Runner struct {
	EC2     awsapi.VerifyEC2
	SSM     awsapi.SSM
	Clock   clock.Clock
	Log     *slog.Logger
	Metrics *metrics.Emitter
	// Reserve is kept free before the invocation deadline: no step starts later.
	Reserve time.Duration
	// Poll is the pause between looks at a volume or the command.
	Poll time.Duration
	// LostAfter: a command SSM still does not know this long after
	// SendCommand is lost.
	LostAfter time.Duration
	// DeliveryTimeout is SendCommand's TimeoutSeconds: a verifier offline
	// that long never gets the command.
	DeliveryTimeout time.Duration
	// MinStart: do not start a new verification with less time left.
	MinStart time.Duration
	// BusyRetry: after hostagent answered busy (exit 3), wait this long
	// before sending the command again.
	BusyRetry time.Duration
}

// NewRunner returns a Runner with production settings.
func NewRunner(e awsapi.VerifyEC2, s awsapi.SSM, c clock.Clock, log *slog.Logger, m *metrics.Emitter) *Runner {
	c, log = clock.OrReal(c), cmp.Or(log, slog.New(slog.DiscardHandler))
	return &Runner{EC2: e, SSM: s, Clock: c, Log: log, Metrics: m, Reserve: 10 * time.Second, Poll: 10 * time.Second,
		LostAfter: 5 * time.Minute, DeliveryTimeout: 10 * time.Minute, MinStart: 30 * time.Second, BusyRetry: time.Minute}
}

// Statuses of a verification in the result.
const (
	StatusOK         = "ok"
	StatusFailed     = "failed"
	StatusInProgress = "in_progress"
)

// Result is what one invocation did.
type Result struct {
	Action        string         `json:"action"`
	Verifier      string         `json:"verifier,omitempty"`
	Verifications []Verification `json:"verifications"`
	// Skipped lists targeted instances with nothing to verify now, and why.
	Skipped []Skipped `json:"skipped,omitempty"`
}

// Verification is one snapshot set's verification as this invocation left it.
type Verification struct {
	InstanceID string   `json:"instance_id"`
	RunID      string   `json:"run_id"`
	Snapshots  []string `json:"snapshots"`
	Volumes    []string `json:"volumes,omitempty"`
	Verifier   string   `json:"verifier,omitempty"`
	Status     string   `json:"status"`
	State      string   `json:"state"`
	// Reason: why it failed, or why this invocation left it in progress.
	Reason        string                 `json:"reason,omitempty"`
	CommandID     string                 `json:"command_id,omitempty"`
	VerifySeconds float64                `json:"verify_seconds,omitempty"`
	Report        *contract.VerifyReport `json:"report,omitempty"`
}

func (res *Result) has(instanceID, runID string) bool {
	for _, v := range res.Verifications {
		if v.InstanceID == instanceID && v.RunID == runID {
			return true
		}
	}
	return false
}

// Skipped is a targeted instance with nothing to verify now.
type Skipped struct {
	InstanceID string `json:"instance_id"`
	Reason     string `json:"reason"`
}

// Run resumes the verifications in progress, then starts new ones while
// time remains and nothing else is running.
func (r *Runner) Run(ctx context.Context, cfg *Config) (*Result, error) {
	until := r.until(ctx, cfg)
	res := &Result{Action: "verify", Verifications: []Verification{}}
	jobs, err := r.loadJobs(ctx, cfg)
	if err != nil {
		return res, err
	}
	busy := false
	var errs []error
	for _, j := range jobs {
		v, err := r.runJob(ctx, cfg, j, until)
		res.Verifications = append(res.Verifications, v)
		busy = busy || v.Status == StatusInProgress
		errs = append(errs, err)
	}
	if busy {
		return res, stepErrors(errs)
	}
	verifier, err := r.findVerifier(ctx, cfg)
	if err != nil {
		if len(jobs) > 0 && errors.Is(err, ErrNoVerifier) {
			return res, nil // the cleanup of what was in progress is this invocation's work
		}
		return res, err
	}
	res.Verifier = verifier.ID
	if err := r.startNew(ctx, cfg, verifier, until, res); err != nil {
		errs = append(errs, err)
	}
	return res, stepErrors(errs)
}

// stepErrors joins the errors that stopped verifications (AWS calls that
// kept failing), so the invocation fails and the errors alarm fires; an
// invocation that merely ran out of time is not one.
func stepErrors(errs []error) error {
	var out []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, errTimeUp) {
			out = append(out, err)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return fmt.Errorf("verify: %w", errors.Join(out...))
}

// startNew verifies, one after another, each targeted instance's due set.
func (r *Runner) startNew(ctx context.Context, cfg *Config, verifier *volumeset.Instance, until time.Time, res *Result) error {
	instances, err := r.targets(ctx, cfg)
	if err != nil {
		return err
	}
	for _, id := range instances {
		if until.Sub(r.Clock.Now()) < r.MinStart {
			res.Skipped = append(res.Skipped, Skipped{InstanceID: id, Reason: "not started: too little invocation time left"})
			continue
		}
		set, why, err := r.dueSet(ctx, cfg, id)
		if err != nil {
			return err
		}
		if set == nil {
			res.Skipped = append(res.Skipped, Skipped{InstanceID: id, Reason: why})
			continue
		}
		if res.has(id, set.RunID) {
			continue // resumed and finished by this invocation
		}
		j := newJob(set, verifier.ID, r.Clock.Now())
		v, err := r.runJob(ctx, cfg, j, until)
		res.Verifications = append(res.Verifications, v)
		if v.Status == StatusInProgress {
			return err // one verification at a time; the next invocation resumes it
		}
	}
	return nil
}

// until is when this invocation stops: its deadline minus Reserve, and never
// past the longest a verification may take.
func (r *Runner) until(ctx context.Context, cfg *Config) time.Time {
	now := r.Clock.Now()
	if rem, ok := clock.Remaining(r.Clock, ctx); ok {
		return now.Add(rem - r.Reserve)
	}
	return now.Add(cfg.MaxDuration + time.Hour)
}

// runJob advances one verification as far as this invocation can and
// reports where it stands.
func (r *Runner) runJob(ctx context.Context, cfg *Config, j *job, until time.Time) (Verification, error) {
	err := r.advance(ctx, cfg, j, until)
	v := j.view(r.Clock.Now())
	switch {
	case j.state == stateDone && j.result == contract.VerifiedOK:
		v.Status = StatusOK
	case j.state == stateDone:
		v.Status, v.Reason = StatusFailed, j.note
	default:
		v.Status = StatusInProgress
		if err != nil {
			v.Reason = err.Error()
		}
	}
	r.Log.Info("verification", "instance", v.InstanceID, "run_id", v.RunID, "status", v.Status, "state", v.State, "reason", v.Reason, "volumes", v.Volumes)
	return v, err
}
