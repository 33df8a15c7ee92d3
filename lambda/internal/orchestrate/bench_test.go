package orchestrate_test

import (
	"context"
	"fmt"
	"github.com/quiesce/quiesce/internal/stats"
	"log/slog"
	"testing"
	"time"

	"github.com/quiesce/quiesce/internal/clock"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/handler"
	"github.com/quiesce/quiesce/lambda/internal/orchestrate"
	"github.com/quiesce/quiesce/lambda/internal/ratelimit"
	"github.com/quiesce/quiesce/test/awslocal"
	"github.com/quiesce/quiesce/test/fakehost"
	"github.com/quiesce/quiesce/test/lambdaenv"
)

// fleetEnv builds n instances with two data volumes each behind awslocal.
func fleetEnv(b *testing.B, n int, clk clock.Clock) (*awslocal.Server, *fakehost.Host, *orchestrate.Runner, *event.Config) {
	srv := &awslocal.Server{Clock: clk}
	host := &fakehost.Host{Clock: clk, Volumes: map[string]map[string][]string{}}
	srv.RunCommand = host.Run
	ids := make([]string, n)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("i-%017x", i+1)
		ids[i] = id
		d, l := fmt.Sprintf("vol-%017x", 2*i+1), fmt.Sprintf("vol-%017x", 2*i+2)
		srv.AddInstance(awslocal.Instance{ID: id, Tags: map[string]string{"quiesce:enabled": "true"}, BlockDevices: []awslocal.BlockDevice{
			{DeviceName: "/dev/xvda", VolumeID: fmt.Sprintf("vol-r%016x", i+1)},
			{DeviceName: "/dev/sdf", VolumeID: d}, {DeviceName: "/dev/sdg", VolumeID: l}}})
		host.Volumes[id] = map[string][]string{"/var/lib/mysql": {d}, "/var/lib/mysql-binlog": {l}}
	}
	c := lambdaenv.Start(b, srv, handler.Retryer)
	r := orchestrate.NewRunner(c.EC2, c.SSM, clk, slog.New(slog.DiscardHandler), nil)
	ev, err := event.Parse([]byte(`{"targets":{"tags":{"quiesce:enabled":"true"}},"mounts":["/var/lib/mysql","/var/lib/mysql-binlog"],"max_concurrency":10}`),
		func(k string) string { return map[string]string{"QUIESCE_STACK": "bench"}[k] }, clk.Now())
	if err != nil {
		b.Fatal(err)
	}
	return srv, host, r, ev
}

// BenchmarkWindowOverhead measures what the orchestration adds to the
// write-blocked window beyond the injected AWS latencies inside it: SSM
// result visibility 200 ms after the freeze ran, CreateSnapshots 300 ms,
// thaw delivery 200 ms (SSM 200 ms each way). Real clock; 100 cycles, one
// instance at a time (~90 s of wall time): the per-cycle overhead, which is
// what the ≤ 50 ms p99 target is about. Run 10 at a time, the instances
// share the run's GetCommandInvocation budget (ratelimit.DefaultPollsPerSecond)
// and detection waits for it: that fleet cost is what BenchmarkFleet1000's
// window_p99_sim_ms shows. The snapshot bucket is raised so pacing (which
// happens before the freeze anyway) does not stretch the run.
func BenchmarkWindowOverhead(b *testing.B) {
	const cycles = 100
	const injected = 700 * time.Millisecond
	srv, host, r, ev := fleetEnv(b, cycles, clock.Real{})
	srv.CommandDelay, srv.ResultDelay = 200*time.Millisecond, 200*time.Millisecond
	srv.SetLatency("CreateSnapshots", 300*time.Millisecond)
	r.Limiter = ratelimit.New(clock.Real{})
	r.Limiter.Bucket, r.Limiter.RefillPerSecond = 10000, 10000
	ev.MaxConcurrency = 1
	b.ResetTimer()
	res, err := r.Run(context.Background(), ev)
	b.StopTimer()
	if err != nil {
		b.Fatalf("run: %v", err)
	}
	var over, lambdaOver []float64
	for _, w := range host.Windows() {
		over = append(over, float64((w.ThawedAt.Sub(w.FrozenAt)-injected).Microseconds())/1000)
	}
	for _, in := range res.Instances {
		if in.Status != orchestrate.StatusOK {
			b.Fatalf("instance %s: %s", in.InstanceID, in.Reason)
		}
		lambdaOver = append(lambdaOver, in.LambdaWindowMS)
	}
	if len(over) != cycles {
		b.Fatalf("windows = %d", len(over))
	}
	b.ReportMetric(stats.Percentile(over, 50), "overhead_p50_ms")
	b.ReportMetric(stats.Percentile(over, 99), "overhead_p99_ms")
	b.ReportMetric(stats.Percentile(over, 100), "overhead_max_ms")
	b.ReportMetric(float64(cycles), "cycles")
	b.ReportMetric(stats.Percentile(lambdaOver, 50), "lambda_window_p50_ms")
}

// BenchmarkFleet1000 runs 1 000 instances × 2 data volumes against
// awslocal enforcing EC2's snapshot rules (bucket 100 refilled 5/s, 15 s
// per volume, ≤5 pending per volume). Scaled clock: 50× (one simulated
// second is 20 ms of wall time) shared by the Lambda, the stand-in and the
// fake hosts; latencies as in BenchmarkWindowOverhead, in simulated time.
func BenchmarkFleet1000(b *testing.B) {
	const n = 1000
	clk := clock.NewScaled(50)
	srv, host, r, ev := fleetEnv(b, n, clk)
	srv.Limits = awslocal.Limits{Enforce: true}
	srv.SnapshotCompleteAfter = 2 * time.Minute
	srv.CommandDelay, srv.ResultDelay = 200*time.Millisecond, 200*time.Millisecond
	srv.SetLatency("CreateSnapshots", 300*time.Millisecond)
	start := clk.Now()
	wall := time.Now()
	b.ResetTimer()
	res, err := r.Run(context.Background(), ev)
	b.StopTimer()
	simulated := clk.Now().Sub(start)
	if res == nil {
		b.Fatalf("run: %v", err)
	}
	throttled := 0
	for _, c := range srv.Calls() {
		if c.ErrorCode != "" {
			throttled++
		}
	}
	var windows []float64
	for _, w := range host.Windows() {
		windows = append(windows, float64(w.ThawedAt.Sub(w.FrozenAt).Microseconds())/1000)
	}
	st := srv.Stats()
	b.ReportMetric(simulated.Minutes(), "simulated_min")
	b.ReportMetric(time.Since(wall).Seconds(), "wall_s")
	b.ReportMetric(float64(res.Failed), "failures")
	b.ReportMetric(float64(throttled), "api_errors_met")
	b.ReportMetric(float64(st.Throttled+st.PerVolumeRate+st.ConcurrentSnapshot), "snapshot_throttles_met")
	b.ReportMetric(float64(st.SnapshotsCreated), "snapshots")
	b.ReportMetric(float64(r.Limiter.Waits()), "paced_waits")
	b.ReportMetric(stats.Percentile(windows, 99), "window_p99_sim_ms")
	if res.Failed > 0 || err != nil {
		for _, in := range res.Instances {
			if in.Status != orchestrate.StatusOK {
				b.Errorf("%s: %s", in.InstanceID, in.Reason)
				break
			}
		}
	}
}
