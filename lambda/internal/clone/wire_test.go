package clone_test

// Wire tests: the real SDK clients against the EC2/SSM stand-in, the real
// QuiesceClone document validating every parameter, a scripted `hostagent
// clone` on the target that checks what it was given is really attached.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/clone"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/handler"
	"github.com/quiesce/quiesce/ssmdoc"
	"github.com/quiesce/quiesce/test/awslocal"
	"github.com/quiesce/quiesce/test/syncbuf"
)

const (
	stack   = "qtest"
	source  = "i-0123456789abcdef0"
	target  = "i-0000000000000beef"
	dataVol = "vol-00000000000000da7"
	logsVol = "vol-00000000000001095"
)

// targetHost is a scripted hostagent clone: every --volume must be attached
// to the target at the device its snapshot was taken from, paired with the
// mount of that snapshot.
type targetHost struct {
	srv     *awslocal.Server
	mu      sync.Mutex
	result  func(inv awslocal.Invocation) awslocal.CommandResult
	release chan struct{}
	invs    []awslocal.Invocation
	errs    []string
}

func (h *targetHost) run(ctx context.Context, inv awslocal.Invocation) awslocal.CommandResult {
	h.mu.Lock()
	h.invs = append(h.invs, inv)
	h.mu.Unlock()
	byID := map[string]awslocal.Volume{}
	for _, v := range h.srv.Volumes() {
		byID[v.ID] = v
	}
	vols, mounts := strings.Split(inv.Param("volumes"), ","), strings.Split(inv.Param("mounts"), ",")
	for i, id := range vols {
		v := byID[id]
		snap, _ := h.srv.Snapshot(v.SnapshotID)
		if v.InstanceID != inv.InstanceID || v.AttachState != "attached" || v.Device != snap.Tags["quiesce:device"] || i >= len(mounts) || mounts[i] != snap.Tags["quiesce:mounts"] {
			h.mu.Lock()
			h.errs = append(h.errs, "volume "+id+" not attached as its snapshot says: "+v.Device+" "+v.AttachState)
			h.mu.Unlock()
			return awslocal.CommandResult{ResponseCode: 2, Stdout: `{"error":"volume not attached","exit_code":2}`}
		}
	}
	if h.release != nil {
		select {
		case <-h.release:
		case <-ctx.Done():
			return awslocal.CommandResult{Status: "Cancelled", ResponseCode: -1}
		}
	}
	if h.result != nil {
		return h.result(inv)
	}
	return report(contract.CloneReport{OK: true, Volumes: vols, Mounts: mounts, LeftRunning: true,
		Replica: &contract.ReplicaChannel{IORunning: "Yes", SQLRunning: "Yes"}}, 0)
}

func report(r contract.CloneReport, code int) awslocal.CommandResult {
	for _, s := range []*[]string{&r.Problems, &r.Notes, &r.Removed} {
		if *s == nil {
			*s = []string{}
		}
	}
	b, _ := json.Marshal(r)
	return awslocal.CommandResult{ResponseCode: code, Stdout: string(b) + "\n"}
}

type env struct {
	t      *testing.T
	srv    *awslocal.Server
	host   *targetHost
	runner *clone.Runner
	sets   map[string][]string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	doc, err := ssmdoc.Clone()
	if err != nil {
		t.Fatal(err)
	}
	srv := &awslocal.Server{Documents: map[string]*ssmdoc.Document{clone.DefaultDocument: doc},
		VolumeDelays: awslocal.VolumeDelays{Create: 30 * time.Millisecond, Attach: 20 * time.Millisecond, Detach: 20 * time.Millisecond}}
	host := &targetHost{srv: srv}
	srv.RunCommand = host.run
	srv.AddInstance(awslocal.Instance{ID: source, AvailabilityZone: "us-east-1a", BlockDevices: []awslocal.BlockDevice{
		{DeviceName: "/dev/xvda", VolumeID: "vol-0000000000000root"}, {DeviceName: "/dev/sdf", VolumeID: dataVol, SizeGiB: 100}, {DeviceName: "/dev/sdg", VolumeID: logsVol, SizeGiB: 20}}})
	srv.AddInstance(awslocal.Instance{ID: target, AvailabilityZone: "us-east-1b", Tags: map[string]string{"quiesce:role": "clone-target"},
		BlockDevices: []awslocal.BlockDevice{{DeviceName: "/dev/xvda", VolumeID: "vol-00000000000troot"}}})
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""), Retryer: handler.Retryer}
	e := &env{t: t, srv: srv, host: host, sets: map[string][]string{}}
	r := clone.NewRunner(ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(hs.URL) }),
		ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = aws.String(hs.URL) }), nil, slog.New(slog.NewJSONHandler(&syncbuf.Buffer{}, nil)))
	r.Poll, r.Reserve = 10*time.Millisecond, 100*time.Millisecond
	e.runner = r
	now := time.Now()
	primary := map[string]string{"quiesce:binlog-file": "mysql-bin.000042", "quiesce:binlog-pos": "4711", "quiesce:gtid": "0-1-1234"}
	e.addSet("r-old", now.Add(-48*time.Hour), "application", primary)
	e.addSet("r-primary", now.Add(-time.Hour), "application", primary)
	e.addSet("r-crash", now.Add(-time.Minute), "crash", primary)
	return e
}

// addSet seeds one run's snapshots of the source's two volumes.
func (e *env) addSet(runID string, at time.Time, consistency string, extra map[string]string) {
	for _, v := range []struct{ vol, dev, mount string }{{dataVol, "/dev/sdf", "/var/lib/mysql"}, {logsVol, "/dev/sdg", "/var/log/mysql"}} {
		tags := map[string]string{"quiesce:stack": stack, "quiesce:run-id": runID, "quiesce:instance": source, "quiesce:consistency": consistency,
			"quiesce:device": v.dev, "quiesce:mounts": v.mount}
		for k, val := range extra {
			tags[k] = val
		}
		e.sets[runID] = append(e.sets[runID], e.srv.AddSnapshot(awslocal.Snapshot{VolumeID: v.vol, VolumeSize: 20, StartTime: at, Tags: tags}))
	}
}

func (e *env) config(ev string) (*clone.Config, error) {
	env := map[string]string{"QUIESCE_STACK": stack}
	cfg, err := event.Parse([]byte(ev), func(k string) string { return env[k] }, time.Now())
	if err != nil {
		return nil, err
	}
	return clone.ParseConfig(cfg, func(k string) string { return env[k] })
}

func (e *env) run(ev string, deadline time.Duration) (*clone.Result, error) {
	e.t.Helper()
	cfg, err := e.config(ev)
	if err != nil {
		e.t.Fatalf("event: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	return e.runner.Run(ctx, cfg)
}

func (e *env) cloneVolumes() []awslocal.Volume {
	var out []awslocal.Volume
	for _, v := range e.srv.Volumes() {
		if v.CreatedBy == "CreateVolume" {
			out = append(out, v)
		}
	}
	return out
}

func (e *env) hostErrors() {
	e.t.Helper()
	e.host.mu.Lock()
	defer e.host.mu.Unlock()
	for _, msg := range e.host.errs {
		e.t.Errorf("target: %s", msg)
	}
}

const primaryEvent = `{"action":"clone","run_id":"r-primary","clone":{"source_instance":"` + source + `","target_instance":"` + target +
	`","source_host":"10.0.0.5","server_id":201,"source_server_ids":[1],"start_command":"systemctl start mariadb","stop_command":"systemctl stop mariadb"}}`

// A set of a primary: volumes in the target's zone at the source's devices,
// the document run with the primary's GTID state; the volumes stay, tagged
// replicating; the same event again changes nothing.
func TestClonePrimarySet(t *testing.T) {
	e := newEnv(t)
	res, err := e.run(primaryEvent, time.Minute)
	if err != nil || res.Status != clone.StatusReplicating || res.Report == nil || !res.Report.OK {
		t.Fatalf("result %+v, %v", res, err)
	}
	e.hostErrors()
	inv := e.host.invs[0]
	want := map[string]string{"sourceHost": "10.0.0.5", "sourcePort": "3306", "sourceGtid": "0-1-1234", "mounts": "/var/lib/mysql,/var/log/mysql",
		"serverId": "201", "sourceServerIds": "1", "startCommand": "systemctl start mariadb", "runId": "r-primary", "timeout": "30m0s",
		"replicationDefaultsFile": "/etc/quiesce/replication.cnf"}
	for k, v := range want {
		if got := inv.Param(k); got != v {
			t.Errorf("parameter %s = %q, want %q", k, got, v)
		}
	}
	vols := e.cloneVolumes()
	if len(vols) != 2 {
		t.Fatalf("volumes %+v", vols)
	}
	for _, v := range vols {
		if v.AvailabilityZone != "us-east-1b" || v.InstanceID != target || v.Tags["quiesce:clone-state"] != "replicating" || v.Tags["quiesce:purpose"] != "clone" {
			t.Errorf("volume %+v", v)
		}
	}
	res, err = e.run(primaryEvent, time.Minute)
	if err != nil || res.Status != clone.StatusReplicating || len(e.host.invs) != 1 || len(e.cloneVolumes()) != 2 {
		t.Errorf("again: %+v %v; %d commands, %d volumes", res, err, len(e.host.invs), len(e.cloneVolumes()))
	}
}

// A set of a replica clones into a sibling: the replica's source and its
// source coordinates (file and position when the GTID tag was cut).
func TestCloneReplicaSetSibling(t *testing.T) {
	e := newEnv(t)
	e.addSet("r-replica", time.Now().Add(-10*time.Minute), "application", map[string]string{"quiesce:binlog-file": "relay-bin.000009",
		"quiesce:binlog-pos": "99", "quiesce:gtid": "0-100-50", "quiesce:source-host": "db-primary.internal", "quiesce:source-port": "3307",
		"quiesce:source-log-file": "mysql-bin.000777", "quiesce:source-log-pos": "1234", "quiesce:source-gtid": "0-1-1200,1-2-3",
		"quiesce:source-gtid-truncated": "4"})
	res, err := e.run(`{"action":"clone","clone":{"source_instance":"`+source+`","target_instance":"`+target+`"}}`, time.Minute)
	if err != nil || res.Status != clone.StatusReplicating || res.RunID != "r-replica" || !res.FromReplica {
		t.Fatalf("result %+v, %v", res, err)
	}
	inv := e.host.invs[0]
	if inv.Param("sourceHost") != "db-primary.internal" || inv.Param("sourcePort") != "3307" || inv.Param("sourceGtid") != "" ||
		inv.Param("sourceLogFile") != "mysql-bin.000777" || inv.Param("sourceLogPos") != "1234" {
		t.Errorf("parameters %v", inv.Parameters)
	}
}

// Replication that will not start: exit 6; the result carries hostagent's
// reason, the invocation fails, and the volumes are detached and deleted.
func TestCloneFailedReleasesVolumes(t *testing.T) {
	e := newEnv(t)
	e.host.result = func(inv awslocal.Invocation) awslocal.CommandResult {
		return report(contract.CloneReport{Volumes: strings.Split(inv.Param("volumes"), ","),
			Problems: []string{"replication will not start: IO error 1045: Access denied for user 'repl'"}}, 6)
	}
	res, err := e.run(primaryEvent, time.Minute)
	var fe *clone.FailedError
	if !errors.As(err, &fe) || res.Status != clone.StatusFailed || !strings.Contains(res.Error, "1045") || !res.VolumesDeleted {
		t.Fatalf("result %+v, %v", res, err)
	}
	if left := e.cloneVolumes(); len(left) != 0 {
		t.Errorf("volumes left: %+v", left)
	}
}

// A failed clone whose volumes take longer to detach than the invocation
// has: it fails with volumes_deleted false, and the next invocation with the
// same event finishes deleting them.
func TestCloneFailedCleanupResumes(t *testing.T) {
	e := newEnv(t)
	e.host.result = func(inv awslocal.Invocation) awslocal.CommandResult {
		return report(contract.CloneReport{Volumes: strings.Split(inv.Param("volumes"), ","), Problems: []string{"replication will not start"}}, 6)
	}
	e.srv.VolumeDelays.Detach = 1500 * time.Millisecond
	res, err := e.run(primaryEvent, time.Second)
	var fe *clone.FailedError
	if !errors.As(err, &fe) || res.Status != clone.StatusFailed || res.VolumesDeleted || len(e.cloneVolumes()) != 2 {
		t.Fatalf("first: %+v %v (%d volumes)", res, err, len(e.cloneVolumes()))
	}
	res, err = e.run(primaryEvent, time.Minute)
	if !errors.As(err, &fe) || !res.VolumesDeleted || len(e.cloneVolumes()) != 0 || len(e.host.invs) != 1 {
		t.Fatalf("second: %+v %v (%d volumes, %d commands)", res, err, len(e.cloneVolumes()), len(e.host.invs))
	}
}

// An invocation out of time returns in_progress; the next one follows the
// same command (never a second one) to its end.
func TestCloneResumesAcrossInvocations(t *testing.T) {
	e := newEnv(t)
	e.host.release = make(chan struct{})
	res, err := e.run(primaryEvent, 2*time.Second)
	if err != nil || res.Status != clone.StatusInProgress {
		t.Fatalf("first: %+v %v", res, err)
	}
	close(e.host.release)
	res, err = e.run(primaryEvent, time.Minute)
	if err != nil || res.Status != clone.StatusReplicating || len(e.host.invs) != 1 {
		t.Fatalf("second: %+v %v (%d commands)", res, err, len(e.host.invs))
	}
}

// Refused before anything is created, each naming the reason.
func TestCloneRefusals(t *testing.T) {
	tests := []struct {
		name, ev, want string
		setup          func(e *env)
	}{
		{name: "crash set", ev: `{"action":"clone","run_id":"r-crash","clone":{"target_instance":"` + target + `"}}`, want: "no complete application-consistent snapshot set"},
		{name: "no private address", ev: `{"action":"clone","run_id":"r-primary","clone":{"target_instance":"` + target + `"}}`, want: "no private IP address"},
		{name: "device taken", ev: primaryEvent, want: "uses /dev/sdf", setup: func(e *env) {
			e.srv.AddInstance(awslocal.Instance{ID: target, AvailabilityZone: "us-east-1b", Tags: map[string]string{"quiesce:role": "clone-target"}, BlockDevices: []awslocal.BlockDevice{
				{DeviceName: "/dev/xvda", VolumeID: "vol-00000000000troot"}, {DeviceName: "/dev/xvdf", VolumeID: "vol-0000000000000taken"}}})
		}},
		{name: "target not tagged", ev: primaryEvent, want: `tagged quiesce:role="verifier", not "clone-target"`, setup: func(e *env) {
			e.srv.AddInstance(awslocal.Instance{ID: target, AvailabilityZone: "us-east-1b", Tags: map[string]string{"quiesce:role": "verifier"}})
		}},
		{name: "target offline", ev: primaryEvent, want: "not online in SSM", setup: func(e *env) { e.srv.SetPingStatus(target, "ConnectionLost") }},
		{name: "no coordinates", ev: `{"action":"clone","run_id":"r-nopos","clone":{"target_instance":"` + target + `","source_host":"db1"}}`, want: "carries no replication coordinates",
			setup: func(e *env) { e.addSet("r-nopos", time.Now(), "application", nil) }},
		{name: "two mounts on a volume", ev: `{"action":"clone","run_id":"r-two","clone":{"target_instance":"` + target + `","source_host":"db1"}}`, want: "exactly one mount point",
			setup: func(e *env) {
				e.addSet("r-two", time.Now(), "application", map[string]string{"quiesce:gtid": "0-1-5", "quiesce:mounts": "/a,/b"})
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.setup != nil {
				tt.setup(e)
			}
			res, err := e.run(tt.ev, time.Minute)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("result %+v, error %v, want %q", res, err, tt.want)
			}
			if calls := e.srv.CallsOf("CreateVolume"); len(calls) != 0 || len(e.host.invs) != 0 {
				t.Errorf("%d CreateVolume calls, %d commands", len(calls), len(e.host.invs))
			}
		})
	}
}

func TestCloneConfigRefusals(t *testing.T) {
	e := newEnv(t)
	for ev, want := range map[string]string{
		`{"action":"clone"}`: "clone: required",
		`{"action":"clone","clone":{"target_instance":"i-0000000000000beef"}}`:                                                            "source_instance",
		`{"action":"clone","clone":{"target_instance":"x","source_instance":"i-0123456789abcdef0"}}`:                                      "target_instance",
		`{"action":"clone","run_id":"r","clone":{"target_instance":"i-0000000000000beef","bogus":1}}`:                                     "unknown field",
		`{"action":"clone","run_id":"r","clone":{"target_instance":"i-0000000000000beef","start_command":"rm -rf /","stop_command":"x"}}`: "start_command",
		`{"action":"clone","run_id":"r","clone":{"target_instance":"i-0000000000000beef","timeout":"25h"}}`:                               "timeout",
		`{"action":"clone","run_id":"r","clone":{"target_instance":"i-0000000000000beef","server_id":5,"source_server_ids":[5]}}`:         "source_server_ids",
		`{"action":"clone","run_id":"r","clone":{"target_instance":"i-0000000000000beef","source_host":"a b"}}`:                           "source_host",
	} {
		if _, err := e.config(ev); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming %s", ev, err, want)
		}
	}
}
