// Package orchestrate runs the quiesce cycle on each target instance and the
// fleet around it: freeze via SSM, snapshot, always thaw, tag honestly. What
// a set may be tagged is decided by package consistency
// (docs/architecture.md#consistency); this package gathers the evidence, tags
// the snapshots with the verdict known at creation and re-tags them when the
// final verdict is lower. Nothing is ever upgraded after creation.
package orchestrate

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/quiesce/quiesce/internal/clock"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/lambda/internal/metrics"
	"github.com/quiesce/quiesce/lambda/internal/ratelimit"
)

// Runner holds the dependencies of a run.
type Runner struct {
	EC2     awsapi.EC2
	SSM     awsapi.SSM
	Clock   clock.Clock
	Limiter *ratelimit.Limiter
	// PollBudget, when set, paces GetCommandInvocation across all instances
	// of a run (see ratelimit.DefaultPollsPerSecond).
	PollBudget *ratelimit.Bucket
	Log        *slog.Logger
	Metrics    *metrics.Emitter
	Poll       PollConfig
	// ThawReserve is kept free before the invocation deadline for the thaw.
	ThawReserve time.Duration
	// ThawWait bounds waiting for the ThawReport after the thaw was sent.
	ThawWait time.Duration
	// MinStartBudget: do not start freezing an instance with less time left.
	MinStartBudget time.Duration
	// OrphanSettle: after a snapshot call was abandoned (its outcome
	// unknown), look for snapshots it created once more this long after,
	// at the end of the run (EC2 may process a queued request late).
	OrphanSettle time.Duration
}

// NewRunner returns a Runner with production settings.
func NewRunner(e awsapi.EC2, s awsapi.SSM, c clock.Clock, log *slog.Logger, m *metrics.Emitter) *Runner {
	c, log = clock.OrReal(c), cmp.Or(log, slog.New(slog.DiscardHandler))
	return &Runner{EC2: e, SSM: s, Clock: c, Limiter: ratelimit.New(c), Log: log, Metrics: m, Poll: DefaultPoll,
		PollBudget:  ratelimit.NewBucket(c, ratelimit.DefaultPollsPerSecond, ratelimit.DefaultPollBurst),
		ThawReserve: 5 * time.Second, ThawWait: 15 * time.Second, MinStartBudget: 10 * time.Second, OrphanSettle: 5 * time.Second}
}

// thawBy is the last moment to send thaw: the invocation deadline minus
// ThawReserve. Freeze polling and snapshot retries stop there; the thaw
// itself then runs on context.WithoutCancel, bounded by thawContextTimeout.
func (r *Runner) thawBy(ctx context.Context) time.Time {
	rem, ok := clock.Remaining(r.Clock, ctx)
	if !ok {
		return r.Clock.Now().Add(24 * time.Hour)
	}
	return r.Clock.Now().Add(rem - r.ThawReserve)
}

type retryPolicy struct {
	base, cap time.Duration
	// throttleOnly retries only definitive rejections (throttling), never
	// a 5xx or transport error after which the request may have run:
	// used for the freeze command, which must not be sent twice.
	throttleOnly bool
	// adapt, when set, picks the backoff for the error met (e.g. slower
	// for EC2's per-volume snapshot limits).
	adapt func(err error) retryPolicy
}

// retry calls f until it succeeds, returns a non-retryable error, or the
// next attempt could not start before `until`. Each attempt's context ends
// at `until`, so no call outlives the deadline it serves. Backoff is
// exponential with full jitter (never below base/2).
func (r *Runner) retry(ctx context.Context, until time.Time, p retryPolicy, f func(ctx context.Context) error) error {
	for attempt := 0; ; attempt++ {
		rem := until.Sub(r.Clock.Now())
		if rem <= 0 {
			return fmt.Errorf("deadline passed before attempt %d", attempt+1)
		}
		callCtx, cancel := r.Clock.WithTimeout(ctx, rem)
		err := f(callCtx)
		cancel()
		if err == nil {
			return nil
		}
		retryable := awsapi.IsRetryable(err) || (awsapi.IsAmbiguous(err) && ctx.Err() == nil && r.Clock.Now().Before(until))
		if p.throttleOnly {
			retryable = awsapi.IsThrottle(err)
		}
		if !retryable {
			return err
		}
		b := p
		if p.adapt != nil {
			b = p.adapt(err)
		}
		ceil := b.base << min(attempt, 10)
		if ceil > b.cap {
			ceil = b.cap
		}
		d := b.base/2 + time.Duration(rand.Int64N(int64(ceil-b.base/2)+1))
		if !r.Clock.Now().Add(d).Before(until) {
			return fmt.Errorf("gave up after %d attempts, retrying would pass the deadline: %w", attempt+1, err)
		}
		if serr := r.Clock.Sleep(ctx, d); serr != nil {
			return fmt.Errorf("%w (after: %v)", serr, err)
		}
	}
}
