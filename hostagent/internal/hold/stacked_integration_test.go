package hold

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quiesce/quiesce/hostagent/internal/state"
	"github.com/quiesce/quiesce/internal/fsfreeze"
	"github.com/quiesce/quiesce/test/fixture"
)

// stackedLoopMounts makes an outer loop filesystem and an inner one whose
// image file lives on the outer; the inner's mount path sorts after the outer's
// (so it is frozen second). Cleanup unmounts the inner first.
func stackedLoopMounts(t *testing.T) (outer, inner *fixture.LoopFS) {
	t.Helper()
	fixture.RequireLoopFS(t, "xfs")
	fixture.RequireLoopFS(t, "ext4")
	outer, err := fixture.NewLoopFS(t.TempDir(), "xfs", 300)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { outer.Close() })
	innerDir := filepath.Join(outer.Mount, "inner")
	if err := os.Mkdir(innerDir, 0o755); err != nil {
		t.Fatal(err)
	}
	inner, err = fixture.NewLoopFS(innerDir, "ext4", 128)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	return outer, inner
}

// The deadlock seen with a loop image on a frozen mount: the outer freezes
// first, the inner's freeze then blocks on writeback into the frozen outer,
// and a FITHAW of the inner blocks in the kernel behind that freeze. The old
// thaw, one mount after the other in reverse order, sat in that FITHAW and
// never reached the outer: everything stayed frozen. Each FITHAW now runs on
// its own, so the outer thaws at once, the inner freeze completes, and the
// inner thaw goes through behind it.
//
// The kernel deadlock is real here, so the test ends it from outside by a
// timer of its own: whatever happens, the outer is FITHAWed by path after
// safetyAfter.
func TestThawStackedLoopMountsDoesNotDeadlock(t *testing.T) {
	outer, inner := stackedLoopMounts(t)
	const safetyAfter = 12 * time.Second
	safety := time.AfterFunc(safetyAfter, func() { outer.Thaw() })
	innerFrozen := make(chan error, 1)
	innerDone := make(chan struct{})
	t.Cleanup(func() {
		safety.Stop()
		outer.Thaw()
		// The inner freeze may complete only now: thaw the inner after it,
		// or it stays frozen (and, unmounted, keeps both loop devices busy).
		select {
		case <-innerDone:
		case <-time.After(30 * time.Second):
			t.Error("inner freeze still blocked at cleanup")
		}
		inner.Thaw()
	})

	// Unsynced data on the inner: its freeze must write through the outer.
	if err := os.WriteFile(filepath.Join(inner.Mount, "dirty"), bytes.Repeat([]byte("x"), 32<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fsfreeze.Freeze(outer.Mount, 0); err != nil {
		t.Fatal(err)
	}
	go func() { innerFrozen <- fsfreeze.Freeze(inner.Mount, 0); close(innerDone) }()
	select {
	case err := <-innerFrozen:
		t.Fatalf("setup: the inner freeze returned (%v) instead of blocking on the frozen outer", err)
	case <-time.After(500 * time.Millisecond):
	}

	a := &Agent{Dir: &state.Dir{Path: t.TempDir()}}
	mounts := []state.Mount{{Path: outer.Mount}, {Path: inner.Mount}} // freeze (path) order
	start := time.Now()
	out, _ := a.thawMounts(mounts)
	took := time.Since(start)
	if took > thawWait+time.Second {
		t.Fatalf("thaw took %v: it waited on the blocked inner mount (the safety timer thawed the outer at %v)", took, safetyAfter)
	}
	if !out[0].Thawed {
		t.Fatalf("outer mount not thawed: %+v", out)
	}
	if !fixture.WriteCompletes(filepath.Join(outer.Mount, "after"), 2*time.Second) {
		t.Fatal("outer mount still frozen after the thaw")
	}
	// The inner freeze goes through once the outer is thawed.
	select {
	case <-innerFrozen:
	case <-time.After(5 * time.Second):
		t.Fatal("inner freeze still blocked with the outer thawed")
	}
	t.Logf("thaw returned in %v; outcomes %+v", took, out)
}
