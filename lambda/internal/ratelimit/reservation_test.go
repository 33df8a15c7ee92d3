package ratelimit

import (
	"context"
	"testing"
	"time"
)

// Tokens move only as the reservation says: unused ones come back at
// Resize, spent ones never, the rest at the one deferred Release.
func TestReservationAccounting(t *testing.T) {
	clk, l := manualLimiter()
	ctx := context.Background()
	tokens := func() float64 { l.mu.Lock(); defer l.mu.Unlock(); return l.tokens }

	r, err := l.ReserveVolumes(ctx, []string{"vol-a", "vol-b", "vol-c"})
	if err != nil || tokens() != 97 {
		t.Fatalf("reserve: %v, tokens %v", err, tokens())
	}
	// The host reports a, d: c's token comes back, d's is taken.
	if err := r.Resize(ctx, []string{"vol-a", "vol-b", "vol-d"}); err != nil || tokens() != 97 {
		t.Fatalf("resize: %v, tokens %v", err, tokens())
	}
	if err := r.Resize(ctx, []string{"vol-a", "vol-d"}); err != nil || tokens() != 98 {
		t.Fatalf("shrink: %v, tokens %v", err, tokens())
	}
	r.Spend([]string{"vol-a"}, clk.Now())
	r.Release()
	r.Release()
	if tokens() != 99 {
		t.Fatalf("after spending one and releasing the other: tokens %v, want 99", tokens())
	}
	if l.pending["vol-a"] != 1 || l.pending["vol-d"] != 0 {
		t.Fatalf("pending %v", l.pending)
	}
}

func TestReservationFailedResizeKeepsWhatItHeld(t *testing.T) {
	clk, l := manualLimiter()
	r, err := l.ReserveVolumes(context.Background(), []string{"vol-a"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < l.MaxPending; i++ {
		l.ObservePending("vol-x", clk.Now().Add(-time.Hour))
	}
	if err := r.Resize(context.Background(), []string{"vol-a", "vol-x"}); err == nil {
		t.Fatal("resize onto a volume at its pending limit succeeded")
	}
	r.Release()
	if l.tokens != l.Bucket {
		t.Fatalf("tokens %v after releasing a failed reservation, want a full bucket", l.tokens)
	}
	var nilRes *Reservation
	nilRes.Release()
}
