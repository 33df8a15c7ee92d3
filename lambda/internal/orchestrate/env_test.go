package orchestrate_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/clock"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/handler"
	"github.com/quiesce/quiesce/lambda/internal/metrics"
	"github.com/quiesce/quiesce/lambda/internal/orchestrate"
	"github.com/quiesce/quiesce/ssmdoc"
	"github.com/quiesce/quiesce/test/awslocal"
	"github.com/quiesce/quiesce/test/fakehost"
	"github.com/quiesce/quiesce/test/lambdaenv"
	"github.com/quiesce/quiesce/test/syncbuf"
)

const (
	inst     = "i-0123456789abcdef0"
	stack    = "qtest"
	rootVol  = "vol-0000000000000root"
	dataVol  = "vol-0000000000000da7a"
	logsVol  = "vol-00000000000001095"
	otherVol = "vol-000000000000a0123"
)

// env is one wire-test world: awslocal behind httptest, the real SDK
// clients with the production retryer, a scripted hostagent.
type env struct {
	t                  testing.TB
	srv                *awslocal.Server
	host               *fakehost.Host
	runner             *orchestrate.Runner
	logs               *syncbuf.Buffer
	emf                *syncbuf.Buffer
	*lambdaenv.Clients // the SDK clients, pointed at srv
}

func addDB(srv *awslocal.Server, host *fakehost.Host, id string, tags map[string]string) {
	srv.AddInstance(awslocal.Instance{ID: id, Tags: tags, BlockDevices: []awslocal.BlockDevice{
		{DeviceName: "/dev/xvda", VolumeID: rootVol + id[len(id)-4:]},
		{DeviceName: "/dev/sdf", VolumeID: dataVol + id[len(id)-4:]},
		{DeviceName: "/dev/sdg", VolumeID: logsVol + id[len(id)-4:]},
		{DeviceName: "/dev/sdh", VolumeID: otherVol + id[len(id)-4:]},
	}})
	if host.Volumes == nil {
		host.Volumes = map[string]map[string][]string{}
	}
	host.Volumes[id] = map[string][]string{
		"/var/lib/mysql":        {dataVol + id[len(id)-4:]},
		"/var/lib/mysql-binlog": {logsVol + id[len(id)-4:]},
	}
}

func vol(base, id string) string { return base + id[len(id)-4:] }

func newEnv(t testing.TB) *env {
	t.Helper()
	doc, err := ssmdoc.Quiesce()
	if err != nil {
		t.Fatal(err)
	}
	// SSM's own parameter validation: every command the Lambda sends must
	// pass the real document's allowedValues/allowedPattern.
	srv := &awslocal.Server{Documents: map[string]*ssmdoc.Document{"Quiesce": doc}}
	host := fakehost.New()
	addDB(srv, host, inst, map[string]string{"quiesce:enabled": "true", "Name": "db1"})
	srv.RunCommand = host.Run
	c := lambdaenv.Start(t, srv, handler.Retryer)
	e := &env{t: t, srv: srv, host: host, Clients: c, logs: &syncbuf.Buffer{}, emf: &syncbuf.Buffer{}}
	log := slog.New(slog.NewJSONHandler(e.logs, nil))
	e.runner = orchestrate.NewRunner(e.EC2, e.SSM, clock.Real{}, log, &metrics.Emitter{W: e.emf, Stack: stack})
	// Long enough for the wire scenarios whose abandoned snapshot calls the
	// stand-in processes late (like EC2 would).
	e.runner.OrphanSettle = 2 * time.Second
	e.runner.ThawWait = 5 * time.Second
	return e
}

// config parses an event the way the handler does.
func (e *env) config(ev string, extraEnv ...string) *event.Config {
	e.t.Helper()
	envs := map[string]string{"QUIESCE_STACK": stack}
	for i := 0; i+1 < len(extraEnv); i += 2 {
		envs[extraEnv[i]] = extraEnv[i+1]
	}
	cfg, err := event.Parse([]byte(ev), func(k string) string { return envs[k] }, time.Now())
	if err != nil {
		e.t.Fatalf("event: %v", err)
	}
	return cfg
}

const baseEvent = `{"targets":{"instance_ids":["` + inst + `"]},"mounts":["/var/lib/mysql","/var/lib/mysql-binlog"],"freeze_timeout":"5s"}`

func (e *env) run(ctx context.Context, ev string) (*orchestrate.Result, error) {
	e.t.Helper()
	if ctx == nil {
		ctx = context.Background()
	}
	return e.runner.Run(ctx, e.config(ev))
}

// instResult returns the result of inst.
func instResult(t testing.TB, res *orchestrate.Result, id string) orchestrate.InstanceResult {
	t.Helper()
	if res == nil {
		t.Fatal("nil result")
	}
	for _, r := range res.Instances {
		if r.InstanceID == id {
			return r
		}
	}
	t.Fatalf("no result for %s in %+v", id, res.Instances)
	return orchestrate.InstanceResult{}
}

// assertHonest checks the invariants every scenario shares: nothing is
// left frozen on the host, a thaw reached the host whenever a freeze did,
// and no snapshot in the stand-in says application unless the result says
// the instance is ok.
func (e *env) assertHonest(res *orchestrate.Result) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = e.srv.WaitCommands(ctx)
	for _, w := range e.host.Windows() {
		thawed := false
		for _, c := range e.host.Calls() {
			if c.InstanceID == w.InstanceID && c.Action == "thaw" && c.RunID == w.RunID && !c.At.Before(w.FrozenAt) {
				thawed = true
			}
		}
		if !thawed {
			e.t.Errorf("instance %s: freeze at %s was never followed by a thaw command", w.InstanceID, w.FrozenAt.Format(time.RFC3339Nano))
		}
	}
	ok := map[string]bool{}
	if res != nil {
		for _, r := range res.Instances {
			ok[r.InstanceID] = r.Status == orchestrate.StatusOK
		}
	}
	for _, s := range e.srv.Snapshots() {
		if res == nil || s.Tags["quiesce:run-id"] != res.RunID {
			continue // seeded by the test
		}
		if s.Tags["quiesce:consistency"] == "application" && !ok[s.Tags["quiesce:instance"]] {
			e.t.Errorf("snapshot %s (%s) is tagged application but instance %s is not ok: tags %v", s.ID, s.VolumeID, s.Tags["quiesce:instance"], s.Tags)
		}
		if s.Tags["quiesce:stack"] != stack {
			e.t.Errorf("snapshot %s lacks the stack tag: %v", s.ID, s.Tags)
		}
		// The user tag budget counts contract.SnapshotTagKeys: a key quiesce
		// writes must be listed there.
		for k := range s.Tags {
			if (k == contract.TagName || strings.HasPrefix(k, contract.TagPrefix)) && !slices.Contains(contract.SnapshotTagKeys[:], k) {
				e.t.Errorf("snapshot %s carries tag %s, which contract.SnapshotTagKeys does not reserve", s.ID, k)
			}
		}
	}
}

// countSnapshots counts the stand-in's snapshots by the first of the
// predicates each one matches.
func (e *env) countSnapshots(matches ...func(awslocal.Snapshot) bool) []int {
	n := make([]int, len(matches))
	for _, s := range e.srv.Snapshots() {
		for i, m := range matches {
			if m(s) {
				n[i]++
				break
			}
		}
	}
	return n
}

func isApplication(s awslocal.Snapshot) bool { return s.Tags["quiesce:consistency"] == "application" }

func thawCount(e *env, id string) int {
	n := 0
	for _, a := range e.host.Actions(id) {
		if a == "thaw" {
			n++
		}
	}
	return n
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
