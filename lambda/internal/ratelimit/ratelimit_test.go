package ratelimit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quiesce/quiesce/internal/clock"
)

// manualLimiter is a Limiter on a manual clock: waits advance the clock
// instead of sleeping, so the tests measure pacing exactly.
func manualLimiter() (*clock.Manual, *Limiter) {
	clk := clock.NewManual(time.Unix(1_000_000, 0))
	return clk, New(clk)
}

func TestBucketPacesAtRefillRate(t *testing.T) {
	clk, l := manualLimiter()
	start := clk.Now()
	// 100 volumes pass at once, the next 45 need 10 s at 4.5/s.
	for i := 0; i < 145; i++ {
		if err := l.Reserve(context.Background(), []string{"vol-" + string(rune('A'+i%26)) + string(rune('a'+i/26))}); err != nil {
			t.Fatal(err)
		}
		if i == 99 && clk.Now() != start {
			t.Fatalf("the first 100 waited %v", clk.Now().Sub(start))
		}
	}
	if el := clk.Now().Sub(start); el < 9900*time.Millisecond || el > 10100*time.Millisecond {
		t.Fatalf("145 tokens took %v, want ~10s", el)
	}
}

func TestPerVolumeSpacingAndPending(t *testing.T) {
	clk, l := manualLimiter()
	ctx := context.Background()
	start := clk.Now()
	l.Created([]string{"vol-1"}, start)
	if err := l.Reserve(ctx, []string{"vol-1", "vol-2"}); err != nil {
		t.Fatal(err)
	}
	if el := clk.Now().Sub(start); el != 15*time.Second {
		t.Fatalf("second snapshot of vol-1 after %v, want 15s", el)
	}
	for i := 0; i < 5; i++ {
		l.ObservePending("vol-3", start)
	}
	before := clk.Now()
	err := l.Reserve(ctx, []string{"vol-3"})
	if !errors.Is(err, ErrPendingLimit) || clk.Now() != before {
		t.Fatalf("err = %v after waiting %v", err, clk.Now().Sub(before))
	}
	l.Release(1000)
	if l.tokens > l.Bucket {
		t.Fatalf("release overfilled the bucket: %v", l.tokens)
	}
}

func TestReserveGivesBackTokensWhenCancelled(t *testing.T) {
	clk, l := manualLimiter()
	l.tokens = 0
	l.at = clk.Now()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Reserve(ctx, []string{"vol-x"}); err == nil {
		t.Fatal("want context error")
	}
	if l.tokens != 0 {
		t.Fatalf("tokens = %v, want refunded to 0", l.tokens)
	}
}

func TestResetPendingForWarmInvocations(t *testing.T) {
	clk, l := manualLimiter()
	for i := 0; i < 5; i++ {
		l.Created([]string{"vol-1"}, clk.Now().Add(-time.Hour))
	}
	if err := l.Reserve(context.Background(), []string{"vol-1"}); !errors.Is(err, ErrPendingLimit) {
		t.Fatalf("err = %v", err)
	}
	l.ResetPending()
	if err := l.Reserve(context.Background(), []string{"vol-1"}); err != nil {
		t.Fatalf("after reset: %v", err)
	}
}
