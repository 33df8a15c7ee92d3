package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/fixture"
)

// Two real loop XFS filesystems, the inner one's image file living on the
// outer one. Freezing the outer first would leave the inner's FIFREEZE (and
// every write to it) waiting on a frozen filesystem; hostagent must refuse
// the pair up front, naming both, and freeze nothing.
func TestNestedLoopMountsRefused(t *testing.T) {
	fixture.RequireLoopFS(t, "xfs")
	outer := loopFS(t, "xfs")
	// Registered after the outer's cleanup, so it runs first: inner unmounted
	// and detached before the outer goes.
	inner := loopFSAt(t, outer.Mount, "xfs", 300, "inner.img")
	e := newEnv(t)

	for _, args := range [][]string{
		{"check", "--mysql-lock", "none", "--mount", outer.Mount, "--mount", inner.Mount},
		{"check", "--mysql-lock", "none", "--mount", inner.Mount, "--mount", outer.Mount},
	} {
		r := e.run(args...)
		requireNestedRefusal(t, r, outer.Mount, inner.Mount)
		var cr contract.CheckReport
		decodeOne(t, r.stdout, &cr)
		if cr.OK || len(cr.Problems) != 1 {
			t.Fatalf("check report %+v, want exactly the one problem", cr)
		}
	}
	if t.Failed() {
		return // never try a freeze that check did not refuse
	}
	// A safety net of our own: should the freeze ever get through, thawing
	// the outer filesystem from outside releases the inner's FIFREEZE.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-stop:
		case <-time.After(10 * time.Second):
			outer.Thaw()
			inner.Thaw()
		}
	}()
	r := e.run("freeze", "--mysql-lock", "none", "--timeout", "5s", "--mount", outer.Mount, "--mount", inner.Mount)
	requireNestedRefusal(t, r, outer.Mount, inner.Mount)
	for _, fs := range []*fixture.LoopFS{outer, inner} {
		requireCompletes(t, writer(t, fs.Mount), 2*time.Second)
	}
	e.requireOnlyProcs(t)
	// Each alone is fine.
	for _, m := range []string{outer.Mount, inner.Mount} {
		if r := e.run("check", "--mysql-lock", "none", "--mount", m); r.code != 0 {
			t.Errorf("check %s alone: exit %d: %s", m, r.code, r.stderr)
		}
	}
}

func requireNestedRefusal(t *testing.T, r result, outer, inner string) {
	t.Helper()
	line := requireUsageLine(t, r)
	t.Logf("refused: %s", line)
	for _, want := range []string{fmt.Sprintf("%q", inner), fmt.Sprintf("%q", outer), "inner.img"} {
		if !strings.Contains(line, want) {
			t.Errorf("stderr %q does not name %s", line, want)
		}
	}
}
