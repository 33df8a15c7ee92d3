// Package clock is the Lambda's time source. Production uses Real; the
// fleet simulation uses Scaled so that minutes of EC2 rate limits pass in
// seconds of wall time (the stand-in shares the same clock).
package clock

import (
	"context"
	"sync"
	"time"
)

// Clock provides time, sleeps and deadlines on one time base.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx is done (returning ctx.Err()).
	Sleep(ctx context.Context, d time.Duration) error
	// WithTimeout is context.WithTimeout on this clock's time base.
	WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc)
}

// Real is the wall clock.
type Real struct{}

// OrReal is c, or the wall clock when c is nil: the runners' constructors
// take nil to mean production.
func OrReal(c Clock) Clock {
	if c == nil {
		return Real{}
	}
	return c
}

func (Real) Now() time.Time { return time.Now() }

func (Real) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (Real) WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// Scaled runs Factor times faster than the wall clock, starting at Start.
type Scaled struct {
	Factor float64
	Start  time.Time
	origin time.Time
}

// NewScaled returns a clock that starts now and runs factor× faster.
func NewScaled(factor float64) *Scaled {
	now := time.Now()
	return &Scaled{Factor: factor, Start: now, origin: now}
}

func (s *Scaled) Now() time.Time {
	return s.Start.Add(time.Duration(float64(time.Since(s.origin)) * s.Factor))
}

func (s *Scaled) real(d time.Duration) time.Duration { return time.Duration(float64(d) / s.Factor) }

func (s *Scaled) Sleep(ctx context.Context, d time.Duration) error {
	return Real{}.Sleep(ctx, s.real(d))
}

func (s *Scaled) WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.real(d))
}

// Remaining returns how long until ctx's deadline on clock c's time base
// (ok=false when ctx has no deadline). Context deadlines are wall time.
func Remaining(c Clock, ctx context.Context) (time.Duration, bool) {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0, false
	}
	wall := time.Until(dl)
	if s, isScaled := c.(*Scaled); isScaled {
		return time.Duration(float64(wall) * s.Factor), true
	}
	return wall, true
}

// Manual is a clock for tests that moves only when slept on or advanced:
// Sleep returns at once, having moved the time by d. WithTimeout sets no
// timer (manual time never reaches a deadline by itself).
type Manual struct {
	mu  sync.Mutex
	now time.Time
}

// NewManual returns a manual clock reading start.
func NewManual(start time.Time) *Manual { return &Manual{now: start} }

func (c *Manual) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *Manual) Sleep(ctx context.Context, d time.Duration) error {
	c.Advance(d)
	return ctx.Err()
}

func (c *Manual) WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithCancel(ctx)
}

// Advance moves the clock by d.
func (c *Manual) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }
