package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/syncbuf"
)

// assertReleased fails the test if anything of the demo's is left under work.
func assertReleased(t *testing.T, work string) {
	t.Helper()
	assertUnmountedDetached(t, work)
	if pids := mariadbdUnder(work); len(pids) > 0 {
		t.Errorf("mariadbd still running: %v", pids)
	}
	if _, err := os.Stat(StateDirFor(work)); err == nil {
		t.Errorf("%s left behind", StateDirFor(work))
	}
	if _, err := os.Stat(filepath.Join(work, "replication.cnf")); err == nil {
		t.Errorf("the replication password file was left behind")
	}
}

// TestShortReplicaDemo runs `demo replica -bench-cycles 1` for real: primary
// and replica on loop XFS volumes with the writer, the replica snapshotted in
// replica lock mode and the primary in auto, each cloned by the real
// hostagent clone and compared with the primary, one cycle per lock mode.
// Afterwards nothing may be left mounted, attached, running or held.
func TestShortReplicaDemo(t *testing.T) {
	ctx, bin, work := demoTest(t, "quiesce-replica-test-")
	goBench := filepath.Join(t.TempDir(), "bench-go.txt")
	line := "BenchmarkReplicaModes/replica-2   1   123 ns/op   4.5 held_p50_ms   9.0 source_stall_max_ms\n"
	if err := os.WriteFile(goBench, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report.md")
	var out syncbuf.Buffer
	start := time.Now()
	res, err := RunReplica(ctx, ReplicaOptions{WorkDir: work, BinDir: bin, Writers: 2, BenchCycles: 1,
		GoBench: goBench, ReportFile: report, CatchUp: time.Minute, Out: &out})
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo replica: %v", err)
	}
	t.Logf("demo replica took %s", time.Since(start).Round(time.Millisecond))
	if res.Failed() {
		t.Fatalf("demo replica reported failure: %v", res.Problems)
	}
	if len(res.Snapshots) != 2 || len(res.Clones) != 2 || len(res.Checks) != 2 {
		t.Fatalf("want 2 snapshots, clones and checks; got %d %d %d", len(res.Snapshots), len(res.Clones), len(res.Checks))
	}
	rs := res.Snapshots[0]
	if rs.Freeze.Lock.Mode != contract.LockReplica || rs.Freeze.Lock.Replication == nil || len(rs.Freeze.Lock.Replication.StoppedAppliers) == 0 {
		t.Errorf("replica snapshot not taken in replica mode with its applier stopped: %+v", rs.Freeze.Lock)
	}
	for _, c := range res.Clones {
		if c.Exit != 0 || !c.Report.OK || c.Report.Replica == nil || c.CaughtUp < c.Replicating {
			t.Errorf("clone of %s: exit %d, report %+v, replicating %s, caught up %s", c.From, c.Exit, c.Report, c.Replicating, c.CaughtUp)
		}
	}
	if n := len(res.Checks[1].States); n != 4 {
		t.Errorf("last comparison covers %d servers, want primary, replica and both clones", n)
	}
	for _, b := range res.Bench {
		if len(b.Held) != 1 || len(b.Errors) != 0 {
			t.Errorf("bench %s: %d cycles, errors %v", b.Mode, len(b.Held), b.Errors)
		}
	}
	md, _ := os.ReadFile(report)
	assertContains(t, "report", string(md), "## Replicas", "| replica ", "| backup-stage ", "held_p50_ms", "4.5")
	if !strings.Contains(out.String(), "PASSED") {
		t.Errorf("summary does not say PASSED")
	}
	assertReleased(t, work)
}

// A clone whose replication cannot start (the replication password is
// wrong) fails the run with hostagent clone's exit 6, and still nothing is
// left behind.
func TestReplicaDemoCloneFails(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	ctx, bin, work := demoTest(t, "quiesce-replica-test-")
	var out syncbuf.Buffer
	res, err := RunReplica(ctx, ReplicaOptions{WorkDir: work, BinDir: bin, Writers: 1, CatchUp: 30 * time.Second, Out: &out,
		beforeClone: func(e *ReplicaEnv) {
			if err := os.WriteFile(e.ReplDefaults, []byte("[quiesce-replication]\nuser=repl\npassword=wrong\n"), 0o600); err != nil {
				t.Error(err)
			}
		}})
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo replica: %v", err)
	}
	if !res.Failed() || len(res.Clones) == 0 {
		t.Fatalf("a clone that cannot replicate passed: %+v", res)
	}
	if c := res.Clones[0]; c.Exit != int(contract.ExitVerifyFailed) || c.Report.OK {
		t.Errorf("clone: exit %d ok %v, want exit %d", c.Exit, c.Report.OK, contract.ExitVerifyFailed)
	}
	if !strings.Contains(out.String(), "FAILED (exit 6)") {
		t.Errorf("summary does not show the failed clone")
	}
	assertReleased(t, work)
}
