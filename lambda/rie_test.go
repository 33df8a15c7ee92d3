package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/internal/stats"
	"github.com/quiesce/quiesce/lambda/internal/orchestrate"
	"github.com/quiesce/quiesce/ssmdoc"
	"github.com/quiesce/quiesce/test/awslocal"
	"github.com/quiesce/quiesce/test/fakehost"
	"github.com/quiesce/quiesce/test/gotool"
	emulator "github.com/quiesce/quiesce/test/rie"
)

// bootstrapPath is the real Lambda binary, built once for the RIE tests.
var bootstrapPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "quiesce-bootstrap-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		bootstrapPath = filepath.Join(dir, "bootstrap")
		// Native GOARCH so the emulator can exec it here; the arm64
		// release build uses the same flags.
		cmd := exec.Command(gotool.Path(), "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", bootstrapPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build bootstrap: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// startRIE runs the emulator with the real bootstrap, pointed at endpoint
// through the standard AWS endpoint variables only. The process is killed
// by PID in cleanup.
func startRIE(t *testing.T, endpoint string, extraEnv ...string) *rie {
	t.Helper()
	bin := emulator.Find()
	if bin == "" {
		t.Skip("aws-lambda-rie not installed (scripts/install-deps.sh installs it into $(go env GOPATH)/bin)")
	}
	env := append([]string{
		"PATH=/usr/bin:/bin",
		"HOME=" + t.TempDir(),
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDLOCAL",
		"AWS_SECRET_ACCESS_KEY=local-secret",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_EC2=" + endpoint,
		"AWS_ENDPOINT_URL_SSM=" + endpoint,
		"QUIESCE_STACK=rie-stack",
	}, extraEnv...)
	f, err := emulator.Start(context.Background(), emulator.Config{Bootstrap: bootstrapPath, RIE: bin, Env: env, Timeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("emulator output:\n%s", f.Logs())
		}
	})
	return &rie{f}
}

// rie is the real bootstrap running under the emulator.
type rie struct{ *emulator.Function }

// invoke sends event and returns the response document: the result, or
// the function error's errorType and errorMessage.
func (r *rie) invoke(t testing.TB, event string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	body, err := r.Invoke(ctx, []byte(event))
	var fe *emulator.FunctionError
	if err != nil && !errors.As(err, &fe) {
		t.Fatalf("invoke: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("response %q: %v", body, err)
	}
	return m
}

const (
	rieInst  = "i-0aaaaaaaaaaaaaaa1"
	rieInst2 = "i-0aaaaaaaaaaaaaaa2"
)

func standIn(t testing.TB) (*awslocal.Server, *fakehost.Host, string) {
	// SSM as it behaves: the invocation is unknown for a moment after
	// SendCommand, delivery and output take a while.
	doc, err := ssmdoc.Quiesce()
	if err != nil {
		t.Fatal(err)
	}
	srv := &awslocal.Server{InvocationDelay: 150 * time.Millisecond, CommandDelay: 20 * time.Millisecond, ResultDelay: 20 * time.Millisecond,
		Documents: map[string]*ssmdoc.Document{"Quiesce": doc}}
	host := fakehost.New()
	srv.RunCommand = host.Run
	srv.AddInstance(awslocal.Instance{ID: rieInst, Tags: map[string]string{"quiesce:enabled": "true", "quiesce:mounts": "/data"},
		BlockDevices: []awslocal.BlockDevice{{DeviceName: "/dev/xvda", VolumeID: "vol-0aaaaaaaaaaaa0001"}, {DeviceName: "/dev/sdf", VolumeID: "vol-0aaaaaaaaaaaa0002"}}})
	host.Volumes = map[string]map[string][]string{rieInst: {"/data": {"vol-0aaaaaaaaaaaa0002"}}}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	return srv, host, hs.URL
}

func TestRIESmoke(t *testing.T) {
	srv, host, endpoint := standIn(t)
	r := startRIE(t, endpoint, "QUIESCE_TARGET_TAG_KEY=quiesce:enabled", "QUIESCE_TARGET_TAG_VALUE=true", "QUIESCE_KEEP_LAST=3")

	// A bare EventBridge scheduled event: everything from the environment.
	start := time.Now()
	resp := r.invoke(t, `{"version":"0","id":"x","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-11-25T20:00:00Z","region":"us-east-1","resources":[],"detail":{}}`)
	firstInvoke := time.Since(start)
	raw, _ := json.Marshal(resp)
	var res orchestrate.Result
	if err := json.Unmarshal(raw, &res); err != nil || res.RunID == "" {
		t.Fatalf("response is not a result: %s (%v)", raw, err)
	}
	if len(res.Instances) != 1 || res.Instances[0].Status != orchestrate.StatusOK || res.Instances[0].Consistency != orchestrate.Application || len(res.Instances[0].Snapshots) != 1 {
		t.Fatalf("result = %s", raw)
	}
	snaps := srv.Snapshots()
	if len(snaps) != 1 {
		t.Fatalf("stand-in has %d snapshots", len(snaps))
	}
	tags := snaps[0].Tags
	if tags["quiesce:stack"] != "rie-stack" || tags["quiesce:run-id"] != res.RunID || tags["quiesce:instance"] != rieInst || tags["quiesce:device"] != "/dev/sdf" ||
		tags["quiesce:mounts"] != "/data" || tags["quiesce:consistency"] != "application" || snaps[0].VolumeID != "vol-0aaaaaaaaaaaa0002" {
		t.Fatalf("snapshot tags = %v", tags)
	}
	if got := host.Actions(rieInst); strings.Join(got, ",") != "freeze,thaw" {
		t.Fatalf("host actions = %v", got)
	}
	t.Logf("cold init (emulator INIT REPORT): %.2f ms; first invoke round trip incl. one cycle: %v", r.InitMS(), firstInvoke.Round(time.Millisecond))

	// A bad event fails before anything is frozen, naming the field.
	resp = r.invoke(t, `{"targets":{"instance_ids":["`+rieInst+`"]},"freeze_timeout":"0s"}`)
	if resp["errorType"] != "ValidationError" || !strings.Contains(fmt.Sprint(resp["errorMessage"]), `freeze_timeout "0s": must be between 1s and 10m`) {
		t.Fatalf("bad event response = %v", resp)
	}
	if got := len(host.Calls()); got != 2 {
		t.Fatalf("host ran %d commands after a bad event, want still 2", got)
	}

	// A failing instance fails the invocation with RunError (the alarm
	// fires) and the result inside the message.
	host.Override = func(inv awslocal.Invocation) (awslocal.CommandResult, bool) {
		if inv.Param("action") == "freeze" {
			return fakehost.Fail(5, "FLUSH TABLES WITH READ LOCK: Lock wait timeout exceeded"), true
		}
		return awslocal.CommandResult{}, false
	}
	// (Another instance: the first one's volume may not be snapshotted again
	// for 15 s, and the warm Lambda remembers that.)
	srv.AddInstance(awslocal.Instance{ID: rieInst2, BlockDevices: []awslocal.BlockDevice{{DeviceName: "/dev/xvda", VolumeID: "vol-0bbbbbbbbbbbb0001"}, {DeviceName: "/dev/sdf", VolumeID: "vol-0bbbbbbbbbbbb0002"}}})
	resp = r.invoke(t, `{"targets":{"instance_ids":["`+rieInst2+`"]},"mounts":["/data"]}`)
	if resp["errorType"] != "RunError" || !strings.Contains(fmt.Sprint(resp["errorMessage"]), "MySQL lock not acquired") {
		t.Fatalf("failing run response = %v", resp)
	}
}

// BenchmarkRIEColdInit starts the emulator with the real bootstrap N times
// and reports the emulator's INIT REPORT duration (process start to the
// runtime's first /next) and the first invocation's round trip.
func BenchmarkRIEColdInit(b *testing.B) {
	const runs = 5
	var inits, firsts []float64
	for i := 0; i < runs; i++ {
		_, _, endpoint := standIn(b)
		r, stop := startRIEBench(b, endpoint)
		start := time.Now()
		resp := r.invoke(b, `{"targets":{"instance_ids":["`+rieInst+`"]},"dry_run":true}`)
		firsts = append(firsts, float64(time.Since(start).Microseconds())/1000)
		if resp["run_id"] == nil {
			b.Fatalf("dry run response = %v", resp)
		}
		if v := r.InitMS(); v >= 0 {
			inits = append(inits, v)
		}
		stop()
	}
	if len(inits) == 0 {
		b.Fatal("no INIT REPORT in the emulator output")
	}
	b.ReportMetric(slices.Max(inits), "cold_init_max_ms")
	b.ReportMetric(stats.Percentile(inits, 50), "cold_init_p50_ms")
	b.ReportMetric(stats.Percentile(firsts, 50), "first_invoke_p50_ms")
	if fi, err := os.Stat(bootstrapPath); err == nil {
		b.ReportMetric(float64(fi.Size())/1e6, "bootstrap_native_MB")
	}
}

func startRIEBench(b *testing.B, endpoint string) (*rie, func()) {
	bin := emulator.Find()
	if bin == "" {
		b.Skip("aws-lambda-rie not installed (scripts/install-deps.sh installs it into $(go env GOPATH)/bin)")
	}
	env := []string{"PATH=/usr/bin:/bin", "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=AKIDLOCAL", "AWS_SECRET_ACCESS_KEY=x", "AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true", "AWS_ENDPOINT_URL_EC2=" + endpoint, "AWS_ENDPOINT_URL_SSM=" + endpoint,
		"QUIESCE_STACK=rie-stack", "QUIESCE_MOUNTS=/data"}
	f, err := emulator.Start(context.Background(), emulator.Config{Bootstrap: bootstrapPath, RIE: bin, Env: env})
	if err != nil {
		b.Fatal(err)
	}
	return &rie{f}, func() { _ = f.Stop() }
}

// BenchmarkBootstrapSize builds the release bootstrap (linux/arm64, the
// flags of `make bootstrap`) and reports its size; target ≤ 15 MB.
func BenchmarkBootstrapSize(b *testing.B) {
	out := filepath.Join(b.TempDir(), "bootstrap")
	cmd := exec.Command(gotool.Path(), "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, msg)
	}
	fi, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "bootstrap_arm64_MiB")
	b.ReportMetric(float64(fi.Size())/1e6, "bootstrap_arm64_MB")
}
