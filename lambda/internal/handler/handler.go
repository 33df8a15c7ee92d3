// Package handler is the Lambda entry logic: parse and validate the event,
// run the action it names (the snapshot run over the fleet, verify or
// clone), log the result. main wires it to the real SDK clients (LoadClients,
// with the SDK retry policy Retryer).
package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/quiesce/quiesce/lambda/internal/clone"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/orchestrate"
	"github.com/quiesce/quiesce/lambda/internal/verify"
)

// Handler runs invocations; Runner is reused across warm invocations (the
// snapshot pacing state carries over).
type Handler struct {
	Runner *orchestrate.Runner
	// Verifier runs the "verify" action (nil: the action is refused).
	Verifier *verify.Runner
	// Cloner runs the "clone" action (nil: the action is refused).
	Cloner *clone.Runner
	Getenv func(string) string
	Log    *slog.Logger
}

// Handle is the Lambda handler. Validation errors fail the invocation
// before anything is frozen; a run with a failed instance returns the
// result inside a *orchestrate.RunError.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) (any, error) {
	getenv := h.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg, err := event.Parse(raw, getenv, h.Runner.Clock.Now())
	if err != nil {
		h.Log.Error("invalid event", "error", err)
		return nil, err
	}
	switch cfg.Action {
	case event.ActionVerify:
		// A nil runner's method value is never called: runAction refuses first.
		return runAction(ctx, h.Log, cfg, getenv, h.Verifier != nil, verify.ParseConfig, h.Verifier.Run)
	case event.ActionClone:
		return runAction(ctx, h.Log, cfg, getenv, h.Cloner != nil, clone.ParseConfig, h.Cloner.Run)
	}
	res, err := h.Runner.Run(ctx, cfg)
	if res != nil {
		logResult(h.Log, res)
	}
	var re *orchestrate.RunError
	if err != nil && !errors.As(err, &re) {
		h.Log.Error("run failed", "run_id", cfg.RunID, "error", err)
	}
	return res, err
}

// runAction runs one of the actions beside the snapshot run (verify,
// clone): refused when this build has no runner for it, its own options
// parsed from the event before any AWS call, its result and failure logged
// under the action's name.
func runAction[C, R any](ctx context.Context, log *slog.Logger, cfg *event.Config, getenv func(string) string, configured bool,
	parse func(*event.Config, func(string) string) (C, error), run func(context.Context, C) (*R, error)) (*R, error) {
	if !configured {
		return nil, fmt.Errorf("the %s action is not configured in this build", cfg.Action)
	}
	c, err := parse(cfg, getenv)
	if err != nil {
		log.Error("invalid event", "error", err)
		return nil, err
	}
	res, err := run(ctx, c)
	if res != nil {
		log.Info(cfg.Action+" result", "result", res)
	}
	if err != nil {
		log.Error(cfg.Action+" failed", "error", err)
	}
	return res, err
}

// Retryer is the SDK retry policy: standard (throttling and 5xx with
// jittered backoff), 3 attempts, backoff ≤ 2 s, and no client-side retry
// quota — a throttled fleet run must back off, not start failing with
// "retry quota exceeded". Calls inside the freeze window override it to one
// attempt and retry under the freeze deadline themselves.
func Retryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 3
		o.MaxBackoff = 2 * time.Second
		o.RateLimiter = ratelimit.None
	})
}

// LoadClients builds the EC2 and SSM clients from the default config chain,
// so AWS_REGION and the standard AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL_SSM
// variables apply (that is how tests and the demo point it at a stand-in).
func LoadClients(ctx context.Context) (*ec2.Client, *ssm.Client, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRetryer(Retryer))
	if err != nil {
		return nil, nil, err
	}
	return ec2.NewFromConfig(cfg), ssm.NewFromConfig(cfg), nil
}

// maxLogResult keeps the "run result" log event under CloudWatch Logs'
// 256 KB event limit (a longer line arrives truncated and unparseable).
const maxLogResult = 200_000

// logResult logs the run's result as one JSON event; a result too big for
// that (a large fleet) is logged as counts plus the failed instances, which
// are also in the invocation's error. Every instance has its own
// "instance done" line anyway.
func logResult(log *slog.Logger, res *orchestrate.Result) {
	b, err := json.Marshal(res)
	if err != nil {
		return
	}
	if len(b) <= maxLogResult {
		log.Info("run result", "run_id", res.RunID, "result", json.RawMessage(b))
		return
	}
	var failed []orchestrate.InstanceResult
	size := 0
	for _, in := range res.Instances {
		if in.Status != orchestrate.StatusFailed {
			continue
		}
		fb, _ := json.Marshal(in)
		if size += len(fb); size > maxLogResult {
			break
		}
		failed = append(failed, in)
	}
	log.Info("run result (large fleet: counts and failed instances only)", "run_id", res.RunID, "instances_ok", res.OK, "instances_failed", res.Failed,
		"instances_skipped", res.Skipped, "retention", res.Retention, "failed_instances", failed)
}
