package main

import (
	"testing"
	"time"
)

// A client stopped (SIGSTOP) while its write probe runs wakes up with both
// the probe finished and its timer expired. That is no frozen state dir: the
// probe, a process of its own, took its write while we were stopped.
func TestProbeDelayedByOurOwnStopIsNotAFrozenDir(t *testing.T) {
	for i := 0; i < 200; i++ {
		done := make(chan error, 1)
		done <- nil // the probe finished while we were stopped...
		// ...and the wait is over by the time we run again.
		if _, finished := awaitProbe(done, 0); !finished {
			t.Fatalf("try %d: a probe that had finished was judged a frozen state dir", i)
		}
	}
	// A probe that really hangs is still refused, within its wait and a grace.
	start := time.Now()
	if _, finished := awaitProbe(make(chan error), 50*time.Millisecond); finished {
		t.Fatal("a hanging probe was taken for a finished one")
	}
	if took := time.Since(start); took > 50*time.Millisecond+probeGrace+time.Second {
		t.Fatalf("hanging probe refused after %v", took)
	}
}
