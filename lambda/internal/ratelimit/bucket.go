package ratelimit

import (
	"context"
	"sync"
	"time"

	"github.com/quiesce/quiesce/internal/clock"
)

// DefaultPollsPerSecond bounds the GetCommandInvocation calls of one run,
// all instances together. One instance polls every ~30 ms while its command
// is young (each poll there is write-blocked time); ten in parallel would be
// ~330 calls/s, far past the rate at which SSM starts throttling an account
// (a handful of 1 s pollers are known to meet it), slowing every other SSM
// user in the account too. Shared, the budget keeps a single instance's
// detection fast (a freeze's first polls fit in the burst) and spreads a
// fleet's polls out; real throttling still backs off on top.
const (
	DefaultPollsPerSecond = 50
	DefaultPollBurst      = 25
)

// Bucket is a token bucket on a clock.Clock (so a scaled clock scales it).
// Safe for concurrent use.
type Bucket struct {
	clock  clock.Clock
	rate   float64 // tokens per second on the clock's time base
	burst  float64
	mu     sync.Mutex
	tokens float64
	at     time.Time
	waits  int
}

// NewBucket returns a full bucket.
func NewBucket(c clock.Clock, perSecond, burst float64) *Bucket {
	return &Bucket{clock: c, rate: perSecond, burst: burst, tokens: burst, at: c.Now()}
}

// Wait takes one token, sleeping until one is due or ctx ends.
func (b *Bucket) Wait(ctx context.Context) error {
	b.mu.Lock()
	now := b.clock.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.at).Seconds()*b.rate)
	b.at = now
	b.tokens-- // reserve now; a negative balance is the queue ahead of us
	var wait time.Duration
	if b.tokens < 0 {
		wait = time.Duration(-b.tokens / b.rate * float64(time.Second))
		b.waits++
	}
	b.mu.Unlock()
	if wait == 0 {
		return nil
	}
	if err := b.clock.Sleep(ctx, wait); err != nil {
		b.mu.Lock()
		b.tokens++ // give the reservation back
		b.mu.Unlock()
		return err
	}
	return nil
}

// Waits counts the calls that had to wait.
func (b *Bucket) Waits() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waits
}
