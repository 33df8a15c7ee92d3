// Package ratelimit paces snapshot creation to EC2's documented limits so a
// fleet run backs off instead of failing: the CreateSnapshot resource bucket
// (100 tokens, refilled 5/s), 15 s between snapshots of one volume, and at
// most 5 pending snapshots per volume.
//
// The orchestrator reserves BEFORE it freezes an instance, so waiting for the
// bucket never extends a write-blocked window. The server still enforces its
// own limits (other tools share the account); those errors are retried
// inside the window up to the freeze deadline.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/quiesce/quiesce/internal/clock"
)

// Defaults from the EC2 documentation, except the refill: EC2 refills 5
// tokens/s, we grant 4.5/s. The grant happens before the freeze and the
// call ~0.5–2 s later with jitter; pacing at exactly EC2's rate would let
// an early call find EC2's bucket empty and retry inside the window. The
// 10 % margin lets EC2's bucket run slightly ahead and absorb the jitter.
const (
	DefaultBucket            = 100
	DefaultRefillPerSecond   = 4.5
	DefaultPerVolumeInterval = 15 * time.Second
	DefaultMaxPending        = 5
)

// ErrPendingLimit: a volume already has the maximum number of pending
// snapshots; waiting for EBS to finish can take hours, so the caller fails
// that instance (and only that one).
var ErrPendingLimit = errors.New("too many pending snapshots")

// Limiter is safe for concurrent use.
type Limiter struct {
	Clock             clock.Clock
	Bucket            float64
	RefillPerSecond   float64
	PerVolumeInterval time.Duration
	MaxPending        int

	mu      sync.Mutex
	tokens  float64
	at      time.Time
	last    map[string]time.Time
	pending map[string]int
	waits   int
}

// New returns a limiter with EC2's defaults.
func New(c clock.Clock) *Limiter {
	return &Limiter{Clock: c, Bucket: DefaultBucket, RefillPerSecond: DefaultRefillPerSecond,
		PerVolumeInterval: DefaultPerVolumeInterval, MaxPending: DefaultMaxPending,
		tokens: DefaultBucket, last: map[string]time.Time{}, pending: map[string]int{}}
}

// ResetPending forgets the pending counts (they are re-read from EC2 at the
// start of every run; a warm Lambda must not accumulate them forever, as
// snapshots complete without telling us).
func (l *Limiter) ResetPending() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = map[string]int{}
}

// ObservePending seeds what is known about a volume before the run: a
// pending snapshot started at start.
func (l *Limiter) ObservePending(volumeID string, start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending[volumeID]++
	if start.After(l.last[volumeID]) {
		l.last[volumeID] = start
	}
}

// Waits returns how many reservations had to wait.
func (l *Limiter) Waits() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waits
}

func (l *Limiter) refill(now time.Time) {
	if l.at.IsZero() {
		l.at = now
		return
	}
	if el := now.Sub(l.at).Seconds(); el > 0 {
		l.tokens += el * l.RefillPerSecond
		if l.tokens > l.Bucket {
			l.tokens = l.Bucket
		}
		l.at = now
	}
}

// Reserve blocks until len(volumes) snapshot tokens are granted and every
// volume's spacing allows a snapshot. Tokens are taken first-come
// first-served (the bucket may go into debt and the caller sleeps it off),
// so concurrent workers are served fairly. It returns ErrPendingLimit
// without waiting when a volume already has MaxPending pending snapshots.
func (l *Limiter) Reserve(ctx context.Context, volumes []string) error {
	if len(volumes) == 0 {
		return nil
	}
	waited := false
	for {
		l.mu.Lock()
		now := l.Clock.Now()
		var spacing time.Duration
		for _, v := range volumes {
			if l.MaxPending > 0 && l.pending[v] >= l.MaxPending {
				l.mu.Unlock()
				return fmt.Errorf("volume %s has %d pending snapshots (EC2 allows %d): %w", v, l.pending[v], l.MaxPending, ErrPendingLimit)
			}
			if last, ok := l.last[v]; ok {
				if w := last.Add(l.PerVolumeInterval).Sub(now); w > spacing {
					spacing = w
				}
			}
		}
		if spacing > 0 {
			if !waited {
				l.waits++
				waited = true
			}
			l.mu.Unlock()
			if err := l.Clock.Sleep(ctx, spacing); err != nil {
				return err
			}
			continue
		}
		l.refill(now)
		need := float64(len(volumes))
		l.tokens -= need
		var debt time.Duration
		if l.tokens < 0 {
			debt = time.Duration(-l.tokens / l.RefillPerSecond * float64(time.Second))
			if !waited {
				l.waits++
			}
		}
		// Claim the volumes now so a concurrent reservation for the same
		// volume waits for the spacing.
		for _, v := range volumes {
			l.last[v] = now.Add(debt)
		}
		l.mu.Unlock()
		if debt > 0 {
			if err := l.Clock.Sleep(ctx, debt); err != nil {
				l.mu.Lock()
				l.tokens += need
				l.mu.Unlock()
				return err
			}
		}
		return nil
	}
}

// Release returns unused tokens (the instance needed fewer volumes than reserved).
func (l *Limiter) Release(n int) {
	if n <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tokens += float64(n)
	if l.tokens > l.Bucket {
		l.tokens = l.Bucket
	}
}

// Created records snapshots started at t (spacing and pending count).
func (l *Limiter) Created(volumes []string, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range volumes {
		l.last[v] = t
		l.pending[v]++
	}
}
