package ratelimit

import (
	"context"
	"fmt"
	"time"
)

// Reservation is one instance's claim on snapshot tokens, taken before its
// freeze. It is resized once the volumes are known and spent by the
// snapshot calls; whatever is neither spent nor already released goes back
// to the bucket on Release, so a caller defers one Release whatever path it
// takes.
type Reservation struct {
	l    *Limiter
	held map[string]bool // volumes holding a token
}

// ReserveVolumes waits for a token for each of volumes (see Reserve).
func (l *Limiter) ReserveVolumes(ctx context.Context, volumes []string) (*Reservation, error) {
	if err := l.Reserve(ctx, volumes); err != nil {
		return &Reservation{l: l}, err
	}
	r := &Reservation{l: l, held: map[string]bool{}}
	for _, v := range volumes {
		r.held[v] = true
	}
	return r, nil
}

// Resize makes the reservation hold exactly volumes: tokens of volumes no
// longer needed go back at once, missing ones are reserved (waiting at most
// as long as ctx allows). On error the reservation holds the volumes it
// had that are still needed.
func (r *Reservation) Resize(ctx context.Context, volumes []string) error {
	want := map[string]bool{}
	var extra []string
	for _, v := range volumes {
		want[v] = true
		if !r.held[v] {
			extra = append(extra, v)
		}
	}
	unused := 0
	for v := range r.held {
		if !want[v] {
			delete(r.held, v)
			unused++
		}
	}
	r.l.Release(unused)
	if len(extra) == 0 {
		return nil
	}
	if err := r.l.Reserve(ctx, extra); err != nil {
		return fmt.Errorf("rate limit for %v: %w", extra, err)
	}
	if r.held == nil {
		r.held = map[string]bool{}
	}
	for _, v := range extra {
		r.held[v] = true
	}
	return nil
}

// Spend records the snapshot calls for volumes, started at t, as made with
// the reserved tokens (Limiter.Created); they are not released after.
func (r *Reservation) Spend(volumes []string, t time.Time) {
	r.l.Created(volumes, t)
	for _, v := range volumes {
		delete(r.held, v)
	}
}

// Release returns every token not spent. It is safe to call more than once.
func (r *Reservation) Release() {
	if r == nil {
		return
	}
	r.l.Release(len(r.held))
	r.held = nil
}
