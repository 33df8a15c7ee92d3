package chaos

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/test/fixture"
)

// The suite's own instruments must see a freeze: a filesystem the test
// freezes itself (FIFREEZE by ioctl) is found frozen by the FITHAW probe,
// and the blocked writer reports how long past the "limit" it was stuck.
// Without this, a probe or writer that never sees anything would let every
// chaos case pass.
func TestInstrumentsSeeAFreeze(t *testing.T) {
	fixture.RequireLoopFS(t, "ext4")
	l, err := fixture.NewLoopFS(t.TempDir(), "ext4", 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close loop: %v", err)
		}
	})
	w := startWriter(l.Mount)
	t.Cleanup(func() { l.Thaw(); w.halt(5 * time.Second) })
	time.Sleep(20 * time.Millisecond)

	fd, err := unix.Open(l.Mount, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), 0xC0045877, 0) // FIFREEZE
	unix.Close(fd)
	if errno != 0 {
		t.Fatalf("FIFREEZE: %v", errno)
	}
	limit := time.Now() // "the deadline": it stays frozen past it
	time.Sleep(thawBound + 50*time.Millisecond)
	if w.blockedSince().IsZero() {
		t.Errorf("writer not blocked on a frozen filesystem")
	}
	if got := thawPaths([]string{l.Mount}, 3*time.Second); len(got) != 1 {
		t.Fatalf("FITHAW probe did not find the frozen filesystem: %v", got)
	}
	ret, stuck, ok := w.waitStuckAfter(limit, time.Now().Add(5*time.Second))
	if !ok {
		t.Fatal("writer never got through after the thaw")
	}
	if stuck < thawBound {
		t.Errorf("writer stuck %v past the limit, want more than %v (frozen that long)", stuck, thawBound)
	}
	if got := thawPaths([]string{l.Mount}, 3*time.Second); len(got) != 0 {
		t.Errorf("FITHAW probe found a thawed filesystem frozen: %v", got)
	}
	// After the thaw a write issued later is not stuck.
	time.Sleep(50 * time.Millisecond)
	later := time.Now()
	if _, stuck, ok := w.waitStuckAfter(later, time.Now().Add(5*time.Second)); !ok || stuck > 100*time.Millisecond {
		t.Errorf("write after the thaw: stuck %v (ok %v)", stuck, ok)
	}
	t.Logf("writer got through %v after the limit, at %s", stuck.Round(time.Millisecond), stamp(ret))
}

// Every category runs in a short run, whatever the seed.
func TestCaseOrderCoversEveryCategory(t *testing.T) {
	for seed := uint64(0); seed < 50; seed++ {
		seen := map[string]bool{}
		for _, c := range caseOrder(seed, len(categories), categories) {
			seen[c.name] = true
		}
		if len(seen) != len(categories) {
			t.Fatalf("seed %d: %d cases cover %d of %d categories", seed, len(categories), len(seen), len(categories))
		}
	}
}
