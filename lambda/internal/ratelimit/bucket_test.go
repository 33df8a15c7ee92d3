package ratelimit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/quiesce/quiesce/internal/clock"
)

func TestBucketBurstThenRate(t *testing.T) {
	b := NewBucket(clock.Real{}, 100, 5)
	start := time.Now()
	for i := 0; i < 5; i++ {
		if err := b.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 20*time.Millisecond || b.Waits() != 0 {
		t.Fatalf("burst of 5 took %v with %d waits; want immediate", d, b.Waits())
	}
	// 10 more at 100/s: about 100 ms, never much less.
	for i := 0; i < 10; i++ {
		if err := b.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > time.Second {
		t.Fatalf("15 tokens at 100/s with burst 5 took %v, want ~100ms", d)
	}
	if b.Waits() == 0 {
		t.Fatal("no wait counted")
	}
}

func TestBucketSharedAcrossGoroutines(t *testing.T) {
	b := NewBucket(clock.Real{}, 200, 1)
	start := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				b.Wait(context.Background())
			}
		}()
	}
	wg.Wait()
	// 40 tokens, 1 free, 39 at 200/s: ≥ 195 ms whatever the interleaving.
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Fatalf("40 waits took %v: the budget was not shared", d)
	}
}

func TestBucketCancelReturnsToken(t *testing.T) {
	b := NewBucket(clock.Real{}, 1, 1)
	b.Wait(context.Background()) // empties it
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := b.Wait(ctx); err == nil {
		t.Fatal("waited past the context")
	}
	b.mu.Lock()
	tokens := b.tokens
	b.mu.Unlock()
	if tokens < -0.1 {
		t.Fatalf("cancelled wait kept its reservation: tokens %v", tokens)
	}
}
