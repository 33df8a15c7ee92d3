package verify_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/clock"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/handler"
	"github.com/quiesce/quiesce/lambda/internal/metrics"
	"github.com/quiesce/quiesce/lambda/internal/verify"
	"github.com/quiesce/quiesce/ssmdoc"
	"github.com/quiesce/quiesce/test/awslocal"
	"github.com/quiesce/quiesce/test/lambdaenv"
	"github.com/quiesce/quiesce/test/syncbuf"
)

const (
	stack    = "qtest"
	source   = "i-0123456789abcdef0"
	verifier = "i-0000000000000beef"
	dataVol  = "vol-00000000000000da7"
	logsVol  = "vol-00000000000001095"
)

// shiftClock is the wall clock plus an offset a test can move forward, so
// the stand-in and the Lambda both see hours pass at once while real
// sleeps and deadlines keep working (clock.Real's).
type shiftClock struct {
	clock.Real
	mu     sync.Mutex
	offset time.Duration
}

func (c *shiftClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}
func (c *shiftClock) Advance(d time.Duration) { c.mu.Lock(); c.offset += d; c.mu.Unlock() }

// newVerifyHost is a scripted `hostagent verify` on the verifier: it checks
// that every volume it is given is attached to it, then answers with Result
// (after Release is closed, when set), else a passing report.
func newVerifyHost(srv *awslocal.Server) *lambdaenv.Host {
	return &lambdaenv.Host{
		Check: func(inv awslocal.Invocation) string {
			attached := map[string]bool{}
			for _, v := range srv.Volumes() {
				if v.InstanceID == inv.InstanceID && v.AttachState == "attached" {
					attached[v.ID] = true
				}
			}
			for _, v := range strings.Split(inv.Param("volumes"), ",") {
				if !attached[v] {
					return "volume " + v + " is not attached to " + inv.InstanceID
				}
			}
			return ""
		},
		Pass: func(inv awslocal.Invocation) awslocal.CommandResult {
			return report(contract.VerifyReport{OK: true, RunID: inv.Param("runId"), Volumes: strings.Split(inv.Param("volumes"), ","), StartMS: 1234, TablesChecked: 12}, 0)
		},
	}
}

func report(r contract.VerifyReport, code int) awslocal.CommandResult {
	if r.Problems == nil {
		r.Problems = []string{}
	}
	return lambdaenv.Report(r, code)
}

type env struct {
	t                  *testing.T
	srv                *awslocal.Server
	host               *lambdaenv.Host
	clock              *shiftClock
	*lambdaenv.Clients // the SDK clients, pointed at srv
	logs               *syncbuf.Buffer
	emf                *syncbuf.Buffer
	sets               map[string][]string // run ID → snapshot IDs (device order)
	runner             *verify.Runner
}

// newEnv: a source instance with two data volumes and snapshot sets of
// several kinds, a verifier in another zone whose /dev/sdf is taken.
func newEnv(t *testing.T, withVerifier bool) *env {
	t.Helper()
	doc, err := ssmdoc.Verify()
	if err != nil {
		t.Fatal(err)
	}
	clk := &shiftClock{}
	srv := &awslocal.Server{Clock: clk, Documents: map[string]*ssmdoc.Document{verify.DefaultDocument: doc},
		VolumeDelays: awslocal.VolumeDelays{Create: 30 * time.Millisecond, Attach: 20 * time.Millisecond, Detach: 20 * time.Millisecond}}
	host := newVerifyHost(srv)
	srv.RunCommand = host.Run
	srv.AddInstance(awslocal.Instance{ID: source, Tags: map[string]string{"quiesce:enabled": "true"}, AvailabilityZone: "us-east-1a", BlockDevices: []awslocal.BlockDevice{
		{DeviceName: "/dev/xvda", VolumeID: "vol-0000000000000root"}, {DeviceName: "/dev/sdf", VolumeID: dataVol, SizeGiB: 100}, {DeviceName: "/dev/sdg", VolumeID: logsVol, SizeGiB: 20}}})
	if withVerifier {
		srv.AddInstance(awslocal.Instance{ID: verifier, Tags: map[string]string{contract.InstanceTagRole: "verifier"}, AvailabilityZone: "us-east-1b", BlockDevices: []awslocal.BlockDevice{
			{DeviceName: "/dev/xvda", VolumeID: "vol-00000000000vroot"}, {DeviceName: "/dev/xvdf", VolumeID: "vol-00000000000vdata"}}})
	}
	c := lambdaenv.Start(t, srv, handler.Retryer)
	e := &env{t: t, srv: srv, host: host, clock: clk, Clients: c, logs: &syncbuf.Buffer{}, emf: &syncbuf.Buffer{}, sets: map[string][]string{}}
	now := clk.Now()
	e.addSet("r-old", now.Add(-48*time.Hour), "application", nil)
	e.addSet("r-new", now.Add(-time.Hour), "application", nil)
	e.addSet("r-crash", now.Add(-10*time.Minute), "crash", nil)
	e.addSet("r-incomplete", now.Add(-5*time.Minute), "application", map[string]string{"quiesce:incomplete": "true"})
	e.runner = e.newRunner()
	return e
}

func (e *env) newRunner() *verify.Runner {
	r := verify.NewRunner(e.EC2, e.SSM, e.clock, slog.New(slog.NewJSONHandler(e.logs, nil)), &metrics.Emitter{W: e.emf, Stack: stack})
	r.Poll, r.Reserve, r.MinStart, r.LostAfter, r.BusyRetry = 10*time.Millisecond, 100*time.Millisecond, 100*time.Millisecond, time.Minute, 50*time.Millisecond
	return r
}

// addSet seeds one run's snapshots of the source's two data volumes.
func (e *env) addSet(runID string, at time.Time, consistency string, extra map[string]string) {
	tags := map[string]string{"quiesce:lock": "backup-stage", "quiesce:binlog-file": "mysql-bin.000042", "quiesce:binlog-pos": "4711", "quiesce:gtid": "0-1-1234"}
	for k, val := range extra {
		tags[k] = val
	}
	vols := []lambdaenv.SetVolume{{VolumeID: dataVol, Device: "/dev/sdf", Mount: "/var/lib/mysql"}, {VolumeID: logsVol, Device: "/dev/sdg", Mount: "/var/lib/mysql-binlog"}}
	e.sets[runID] = append(e.sets[runID], lambdaenv.AddSet(e.srv, stack, source, runID, at, consistency, vols, tags)...)
}

func (e *env) config(ev string) *verify.Config {
	e.t.Helper()
	env := map[string]string{"QUIESCE_STACK": stack}
	cfg, err := event.Parse([]byte(ev), func(k string) string { return env[k] }, e.clock.Now())
	if err != nil {
		e.t.Fatalf("event: %v", err)
	}
	vc, err := verify.ParseConfig(cfg, func(k string) string { return env[k] })
	if err != nil {
		e.t.Fatalf("verify options: %v", err)
	}
	return vc
}

const baseEvent = `{"action":"verify","targets":{"instance_ids":["` + source + `"]}}`

// run invokes the action with a deadline (0: none).
func (e *env) run(ev string, deadline time.Duration) (*verify.Result, error) {
	e.t.Helper()
	ctx := context.Background()
	if deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, deadline)
		defer cancel()
	}
	return e.runner.Run(ctx, e.config(ev))
}

// verifyVolumes returns the temporary volumes still in the stand-in.
func (e *env) verifyVolumes() []awslocal.Volume { return lambdaenv.CreatedVolumes(e.srv) }

// assertClean: no temporary volume is left, and the fake host never saw a
// volume that was not attached.
func (e *env) assertClean() {
	e.t.Helper()
	if left := e.verifyVolumes(); len(left) != 0 {
		e.t.Errorf("temporary volumes left: %+v", left)
	}
	for _, msg := range e.host.Errors() {
		e.t.Errorf("verifier: %s", msg)
	}
}

func (e *env) snapTags(runID string) []map[string]string {
	var out []map[string]string
	for _, id := range e.sets[runID] {
		s, ok := e.srv.Snapshot(id)
		if !ok {
			e.t.Fatalf("snapshot %s of %s is gone", id, runID)
		}
		out = append(out, s.Tags)
	}
	return out
}

func only(t *testing.T, res *verify.Result) verify.Verification {
	t.Helper()
	if res == nil || len(res.Verifications) != 1 {
		t.Fatalf("want one verification, got %+v", res)
	}
	return res.Verifications[0]
}
