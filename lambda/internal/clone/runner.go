package clone

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/clock"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/lambda/internal/ssmrun"
	"github.com/quiesce/quiesce/lambda/internal/volumeset"
)

// Runner runs clone invocations.
type Runner struct {
	EC2   awsapi.VerifyEC2
	SSM   awsapi.SSM
	Clock clock.Clock
	Log   *slog.Logger
	// Poll paces the waits for volumes, attachments and the command.
	Poll time.Duration
	// Reserve is the time kept back from the invocation's deadline: an
	// invocation stops waiting then and returns in_progress.
	Reserve time.Duration
}

// NewRunner returns a Runner with production pacing.
func NewRunner(e awsapi.VerifyEC2, s awsapi.SSM, c clock.Clock, log *slog.Logger) *Runner {
	c, log = clock.OrReal(c), cmp.Or(log, slog.New(slog.DiscardHandler))
	return &Runner{EC2: e, SSM: s, Clock: c, Log: log, Poll: 5 * time.Second, Reserve: 20 * time.Second}
}

// Statuses of a clone in the result.
const (
	StatusReplicating = "replicating"
	StatusFailed      = "failed"
	StatusInProgress  = "in_progress"
)

// Result is what one invocation did.
type Result struct {
	Action         string                    `json:"action"`
	Status         string                    `json:"status"`
	RunID          string                    `json:"run_id"`
	SourceInstance string                    `json:"source_instance"`
	TargetInstance string                    `json:"target_instance"`
	FromReplica    bool                      `json:"from_replica"`
	SourceHost     string                    `json:"source_host"`
	SourcePort     int                       `json:"source_port"`
	Coordinates    contract.CloneCoordinates `json:"coordinates"`
	Volumes        []member                  `json:"volumes"`
	CommandID      string                    `json:"command_id,omitempty"`
	// Report is hostagent clone's report (nil until the command ended, or
	// when its output was unreadable).
	Report *contract.CloneReport `json:"report,omitempty"`
	// Error says why a failed clone failed.
	Error string `json:"error,omitempty"`
	// VolumesDeleted: a failed clone's volumes are gone again.
	VolumesDeleted bool `json:"volumes_deleted,omitempty"`
}

// FailedError is returned with a failed clone's result, so the invocation
// fails (and alarms) with the result in its message.
type FailedError struct{ Result *Result }

func (e *FailedError) Error() string {
	b, _ := json.Marshal(e.Result)
	return "clone failed: " + string(b)
}

// Run clones one set onto the target: plan, volumes, command, outcome. An
// error without a result is a step that could not be carried out (the
// next invocation with the same event resumes).
func (r *Runner) Run(ctx context.Context, cfg *Config) (*Result, error) {
	set, err := r.findSet(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p, err := planSet(set.Snapshots)
	if err != nil {
		return nil, err
	}
	if err := r.sourceEndpoint(ctx, cfg, p); err != nil {
		return nil, err
	}
	res := &Result{Action: "clone", Status: StatusInProgress, RunID: p.runID, SourceInstance: p.instanceID, TargetInstance: cfg.TargetInstance,
		FromReplica: p.fromReplica, SourceHost: p.sourceHost, SourcePort: p.sourcePort, Coordinates: p.coords}
	wctx, cancel := r.workContext(ctx)
	defer cancel()
	err = r.clone(wctx, cfg, p, res)
	res.Volumes = p.members
	switch {
	case res.Status == StatusFailed:
		// Also when the cleanup ran out of time (volumes_deleted false):
		// the next invocation with the same event finishes it.
		return res, &FailedError{Result: res}
	case err != nil && ctx.Err() == nil && wctx.Err() != nil:
		r.Log.Info("clone continues in the next invocation", "run_id", p.runID, "target", cfg.TargetInstance)
		return res, nil // in progress: out of time
	case err != nil:
		return res, err
	}
	return res, nil
}

// workContext ends Reserve before the invocation's deadline.
func (r *Runner) workContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, dl.Add(-r.Reserve))
	}
	return context.WithCancel(ctx)
}

func (r *Runner) clone(ctx context.Context, cfg *Config, p *plan, res *Result) error {
	vols, err := r.cloneVolumes(ctx, cfg, p)
	if err != nil {
		return err
	}
	switch stateOf(vols) {
	case stateFailed: // an earlier invocation recorded it: finish the cleanup
		res.Status, res.Error = StatusFailed, tagMap(vols[0].Tags)[contract.TagCloneNote]
		return r.releaseAll(ctx, p, res)
	case stateReplicating:
		res.Status, res.CommandID = StatusReplicating, tagMap(vols[0].Tags)[contract.TagCloneCommand]
		return nil
	}
	target, err := r.describeTarget(ctx, cfg)
	if err != nil {
		return err
	}
	if err := r.requireOnline(ctx, cfg.TargetInstance); err != nil {
		return err
	}
	if err := r.ensureVolumes(ctx, cfg, p, target); err != nil {
		return err
	}
	if err := r.runCommand(ctx, cfg, p, res); err != nil {
		return err
	}
	if res.Status == StatusFailed {
		return r.releaseAll(ctx, p, res)
	}
	return nil
}

// describeTarget returns the target, refusing one that is not running or
// not tagged as meant to become a clone.
func (r *Runner) describeTarget(ctx context.Context, cfg *Config) (*volumeset.Instance, error) {
	id := cfg.TargetInstance
	t, err := volumeset.DescribeInstance(ctx, r.EC2, id)
	switch {
	case err != nil:
		return nil, fmt.Errorf("describe the target %s: %w", id, err)
	case t == nil:
		return nil, fmt.Errorf("target %s not found", id)
	case t.State != string(ec2types.InstanceStateNameRunning):
		return nil, fmt.Errorf("target %s is not running", id)
	}
	if role := t.Tags[TagRole]; role != cfg.TargetRole {
		return nil, fmt.Errorf("target %s is tagged %s=%q, not %q: only instances meant to become clones take the volumes", id, TagRole, role, cfg.TargetRole)
	}
	return t, nil
}

// sourceEndpoint: the event's source_host/source_port win; a set of a
// primary otherwise replicates from the source instance's private address.
func (r *Runner) sourceEndpoint(ctx context.Context, cfg *Config, p *plan) error {
	if cfg.SourceHost != "" {
		p.sourceHost = cfg.SourceHost
	}
	if cfg.SourcePort != 0 {
		p.sourcePort = cfg.SourcePort
	}
	if p.sourcePort == 0 {
		p.sourcePort = 3306
	}
	if p.sourceHost != "" {
		return nil
	}
	out, err := r.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{p.instanceID}})
	if err != nil {
		return fmt.Errorf("describe the source %s: %w", p.instanceID, err)
	}
	for _, res := range out.Reservations {
		for _, in := range res.Instances {
			p.sourceHost = aws.ToString(in.PrivateIpAddress)
		}
	}
	if p.sourceHost == "" {
		return fmt.Errorf("source %s has no private IP address to replicate from: give clone.source_host", p.instanceID)
	}
	return nil
}

// requireOnline refuses a target SSM cannot reach now: the command would
// only wait for it, with the volumes created and attached for nothing.
func (r *Runner) requireOnline(ctx context.Context, id string) error {
	ping, err := ssmrun.PingStatus(ctx, r.SSM, []string{id})
	if err != nil {
		return fmt.Errorf("SSM status of the target %s: %w", id, err)
	}
	if ping[id] != string(ssmtypes.PingStatusOnline) {
		return fmt.Errorf("target %s is not online in SSM (agent not running, or not a managed instance)", id)
	}
	return nil
}
