package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/internal/fsfreeze"
	"github.com/quiesce/quiesce/test/demo/pool"
	"github.com/quiesce/quiesce/test/syncbuf"
)

// buildBinaries builds hostagent and the native bootstrap the way the
// Makefile does, into a temp bin dir.
func buildBinaries(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go toolchain not on PATH")
	}
	bin := t.TempDir()
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// One build for both (lambda.norpc only matters to aws-lambda-go, which
	// hostagent does not import), as the Makefile builds them.
	cmd := exec.Command(goBin, "build", "-trimpath", "-tags", "lambda.norpc", "-o", bin+"/",
		"github.com/quiesce/quiesce/hostagent", "github.com/quiesce/quiesce/lambda")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build hostagent lambda: %v\n%s", err, out)
	}
	if err := os.Rename(filepath.Join(bin, "lambda"), filepath.Join(bin, "bootstrap")); err != nil {
		t.Fatal(err)
	}
	return bin
}

// demoWorkDir makes a work dir under /var/tmp (the demo refuses /tmp) and,
// after the test, releases whatever of the demo's is still under it (the
// safety net when a test fails midway) and removes it. With mustBeClean
// anything left to release fails the test.
func demoWorkDir(t testing.TB, prefix, bin string, mustBeClean bool) string {
	t.Helper()
	if err := os.MkdirAll("/var/tmp", 0o1777); err != nil {
		t.Fatal(err)
	}
	work, err := os.MkdirTemp("/var/tmp", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if done, err := Clean(context.Background(), work, bin); mustBeClean && (len(done) > 0 || err != nil) {
			t.Errorf("demo left resources behind (released now): %v %v", done, err)
		}
		os.RemoveAll(work)
	})
	return work
}

// demoTest prepares a whole-demo test (skipped where the demo cannot run):
// the binaries, a work dir that must be left clean, a three-minute context.
func demoTest(t *testing.T, prefix string) (ctx context.Context, bin, work string) {
	t.Helper()
	skipUnlessDemoCanRun(t)
	bin = buildBinaries(t)
	work = demoWorkDir(t, prefix, bin, true)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx, bin, work
}

func skipUnlessDemoCanRun(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("the demo needs root (loop devices, mount, FIFREEZE); uid %d", os.Geteuid())
	}
	os.Setenv("PATH", os.Getenv("PATH")+":/usr/local/sbin:/usr/sbin:/sbin")
	for _, tool := range Tools {
		if _, err := exec.LookPath(tool.Name); err != nil {
			t.Skipf("%s not installed (apt-get install %s; scripts/install-deps.sh does it)", tool.Name, tool.Package)
		}
	}
}

// TestShortDemo runs `demo run -cycles 2` for real: loop XFS pool and volume,
// MariaDB with the writer, the real bootstrap under RIE (or the built-in
// Runtime API when RIE is missing) against the in-process stand-in, which runs
// the real SSM documents and hostagent; then the Lambda's verify action on
// both snapshots (volumes created, loop-attached, hostagent verify with
// demo/bank-checks.sql, detached, deleted, snapshots tagged) and on a
// deliberately damaged copy, which must fail naming bank.accounts.
// Afterwards nothing may be left mounted, attached, running or held.
func TestShortDemo(t *testing.T) {
	ctx, bin, work := demoTest(t, "quiesce-demo-test-")
	var out syncbuf.Buffer
	start := time.Now()
	res, err := Run(ctx, RunOptions{
		Config:   Config{WorkDir: work, BinDir: bin, Writers: 2, PoolSize: 4 << 30, VolumeSize: 1 << 30, Out: &out},
		Cycles:   2,
		Interval: time.Second,
	})
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo run: %v", err)
	}
	t.Logf("demo took %s (lambda mode %s)", time.Since(start).Round(time.Millisecond), res.Lambda)
	if res.Failed() {
		t.Fatalf("demo reported failure: %+v", res.Summary)
	}
	if res.Summary.CyclesOK != 2 || res.Summary.Snapshots != 2 || res.Summary.VerifiedOK != 2 || !res.Summary.DamagedCaught {
		t.Fatalf("want 2 cycles, 2 snapshots, 2 verified, the damaged copy caught; got %+v", res.Summary)
	}
	for _, c := range res.Cycles {
		if c.Window <= 0 || c.Freeze == nil || c.Thaw == nil || c.Freeze.Lock.BinlogPos == 0 {
			t.Errorf("cycle %d incomplete: window %s, freeze %v, thaw %v", c.N, c.Window, c.Freeze, c.Thaw)
		}
	}
	for _, v := range res.Verifications {
		checkEvidence(t, v)
	}
	d := res.Damaged
	if d.Report == nil || len(d.Report.TablesFailed) == 0 || !strings.Contains(d.VerifyNote, "`bank`.`accounts`") {
		t.Errorf("damaged copy failed without CHECK TABLE naming bank.accounts: note %q report %+v", d.VerifyNote, d.Report)
	}
	if _, err := os.Stat(filepath.Join(work, "demo-result.json")); err != nil {
		t.Errorf("demo-result.json: %v", err)
	}
	if vols := res.LeftVolumes; len(vols) > 0 {
		t.Errorf("verify volumes left in the stand-in: %v", vols)
	}
	if res.Writer.Commits == 0 || res.Writer.Errors != 0 {
		t.Errorf("writer: %d commits, %d errors %v", res.Writer.Commits, res.Writer.Errors, res.Writer.FirstErrs)
	}
	text := out.String()
	assertContains(t, "output", text, "cycle  1/2", "cycle  2/2", "PASS  snap-", "quiesce:verified=ok", "CAUGHT  snap-", "(deliberately damaged copy: must fail)  quiesce:verified=failed", "2 ok, 0 failed; damaged copy caught")
	// Everything released by Run itself.
	assertReleased(t, work)
	// The snapshot images stay for inspection, inside the (unmounted) pool image.
	if _, err := os.Stat(filepath.Join(work, "pool.img")); err != nil {
		t.Errorf("pool image with the snapshots not kept: %v", err)
	}
}

// assertUnmountedDetached fails the test if anything is still mounted below
// work or a loop device is still backed by a file below it.
func assertUnmountedDetached(t *testing.T, work string) {
	t.Helper()
	if ms := pool.MountsUnder(work); len(ms) > 0 {
		t.Errorf("still mounted: %v", ms)
	}
	if loops := pool.LoopsBackedBy(work); len(loops) > 0 {
		t.Errorf("still attached: %v", loops)
	}
}

// checkEvidence: a verification that passed must show what it proved.
func checkEvidence(t *testing.T, v Verification) {
	t.Helper()
	r := v.Report
	switch {
	case r == nil:
		t.Errorf("%s verified without a report", v.SnapshotID)
	case r.TablesChecked < 4 || len(r.Checks) != 6 || r.StartMS <= 0:
		t.Errorf("%s: %d tables, %d checks, start %v ms", v.SnapshotID, r.TablesChecked, len(r.Checks), r.StartMS)
	case r.Binlog == nil || !r.Binlog.Match || r.GTID == nil || !r.GTID.Match:
		t.Errorf("%s: binlog %+v gtid %+v not compared with the tags", v.SnapshotID, r.Binlog, r.GTID)
	case v.Transfers == 0 || v.VerifiedAt == "" || v.CreateToTag <= 0:
		t.Errorf("%s: %d transfers, verified-at %q, create→tag %s", v.SnapshotID, v.Transfers, v.VerifiedAt, v.CreateToTag)
	}
}

func TestPrepareWorkDirRefusesForeignDirectories(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := prepareWorkDir(dir); err == nil || !strings.Contains(err.Error(), "not made by the demo") {
		t.Fatalf("took over a foreign directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious")); err != nil {
		t.Fatal("foreign file removed")
	}
	// A previous demo's directory is emptied and reused.
	if err := os.WriteFile(filepath.Join(dir, markerFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := prepareWorkDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious")); err == nil {
		t.Fatal("previous run's files not removed")
	}
	for _, bad := range []string{"/", "/tmp", "/var/tmp", "relative", "/var/tmp/../tmp", "/var/tmp/a b", "/var/tmp/a,b", "/work"} {
		if err := CheckWorkDir(bad); err == nil {
			t.Errorf("CheckWorkDir(%q) accepted", bad)
		}
	}
	if err := CheckWorkDir("/var/tmp/quiesce-demo"); err != nil {
		t.Errorf("default rejected: %v", err)
	}
}

// BenchmarkDemoCycles measures the demo's targets over 10 full cycles, each
// snapshot verified by the Lambda's verify action (make bench runs it once):
// write-blocked window p50/p99 (hostagent freeze start → thaw, excluding the
// snapshot copy), the worst writer stall beyond its window, verification
// failures and create volume → quiesce:verified p50.
func BenchmarkDemoCycles(b *testing.B) {
	skipUnlessDemoCanRun(b)
	bin := buildBinaries(b)
	work := demoWorkDir(b, "quiesce-demo-bench-", bin, false)
	const cycles = 10
	b.ResetTimer()
	var res *RunResult
	var err error
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		res, err = Run(ctx, RunOptions{Config: Config{WorkDir: work, BinDir: bin, Writers: 4}, Cycles: cycles, Interval: time.Second})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	s := res.Summary
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(s.WindowExclCopy.P50), "window_p50_ms")
	b.ReportMetric(ms(s.WindowExclCopy.P99), "window_p99_ms")
	b.ReportMetric(ms(s.LambdaWindow.P50), "lambda_window_p50_ms")
	b.ReportMetric(ms(s.Copy.P50), "copy_p50_ms")
	b.ReportMetric(ms(s.StallMinusWindowMax), "stall_minus_window_max_ms")
	b.ReportMetric(float64(s.VerifyFailed), "verify_failures")
	b.ReportMetric(ms(s.CreateToVerified.P50), "create_to_verified_p50_ms")
	b.ReportMetric(float64(s.CyclesFailed), "cycle_failures")
}

// A setup that fails midway (the data volume is too small for XFS) must undo
// what it made: no mount, no loop device, no server left.
func TestSetupFailureReleasesEverything(t *testing.T) {
	skipUnlessDemoCanRun(t)
	bin := t.TempDir()
	for _, b := range []string{"hostagent", "bootstrap"} { // Preflight only checks they exist
		if err := os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	work := demoWorkDir(t, "quiesce-demo-fail-", bin, false)
	env, err := Setup(context.Background(), Config{WorkDir: work, BinDir: bin, PoolSize: 1 << 30, VolumeSize: 16 << 20})
	if err == nil {
		env.Close(context.Background())
		t.Fatal("setup with a 16 MiB XFS volume succeeded")
	}
	if !strings.Contains(err.Error(), "format vol-") {
		t.Fatalf("unexpected error: %v", err)
	}
	assertUnmountedDetached(t, work)
}

// `demo clean` after a demo that died without cleaning up (simulated: the
// environment is set up, a hostagent run holds the data volume, another
// filesystem is frozen outside hostagent, and Close is never
// called): everything under the work dir is thawed, stopped, unmounted and
// detached, by PID and by path, nothing else touched — a verification's
// volume (loop device, mounted under hostagent verify's TMPDIR) included.
func TestCleanReleasesAKilledDemo(t *testing.T) {
	skipUnlessDemoCanRun(t)
	bin := buildBinaries(t)
	work := demoWorkDir(t, "quiesce-demo-clean-", bin, false)
	env, err := Setup(context.Background(), Config{WorkDir: work, BinDir: bin, PoolSize: 2 << 30, VolumeSize: 512 << 20, NoRIE: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close(context.Background()) //nolint:errcheck // releases the in-process parts; the rest is Clean's job
	// A verification killed midway: a volume made from a snapshot, attached
	// and mounted where hostagent verify mounts (TMPDIR under the work dir).
	const snap, vol = "snap-0c1ea000000000001", "vol-0c1ea000000000001"
	if err := env.Hooks.OnSnapshot(context.Background(), env.InstanceID, env.Vol.ID, snap); err != nil {
		t.Fatal(err)
	}
	if err := env.Hooks.OnCreateVolume(context.Background(), vol, snap); err != nil {
		t.Fatal(err)
	}
	if err := env.Hooks.OnAttachVolume(context.Background(), env.InstanceID, vol, "/dev/sdg"); err != nil {
		t.Fatal(err)
	}
	verifyDev := env.Hooks.Volumes()[0].Device
	verifyMnt := filepath.Join(work, verifyTmp, "quiesce-verify-killed", "mnt", "0")
	if err := pool.Mount(context.Background(), verifyDev, verifyMnt, "nouuid"); err != nil {
		t.Fatal(err)
	}
	// A hostagent run still holding the data volume (the demo died between
	// freeze and thaw), and a filesystem frozen outside hostagent.
	const runID = "killed-demo-run"
	if _, code, err := env.Hostagent(context.Background(), "freeze", "--mount", env.Vol.Dir, "--mysql-lock", "none", "--timeout", "5m", "--run-id", runID); err != nil {
		t.Fatalf("hostagent freeze: exit %d: %v", code, err)
	}
	if err := fsfreeze.Freeze(verifyMnt, 0); err != nil {
		t.Fatal(err)
	}
	pid := env.DB.PID
	done, err := Clean(context.Background(), work, bin)
	if err != nil {
		t.Fatalf("clean: %v (done %q)", err, done)
	}
	joined := strings.Join(done, "\n")
	assertContains(t, "clean", joined, "thawed hostagent run "+runID, "stopped mariadbd pid", "unmounted "+env.Vol.Dir, "unmounted "+env.Pool.Dir, "detached "+env.Vol.Dev, "detached "+env.Pool.Dev,
		"unmounted "+verifyMnt, "detached "+verifyDev)
	assertUnmountedDetached(t, work)
	select {
	case <-env.DB.Exited():
	case <-time.After(5 * time.Second):
		t.Errorf("mariadbd pid %d still running", pid)
	}
}
