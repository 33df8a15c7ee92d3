package clone_test

// Wire tests: the real SDK clients against the EC2/SSM stand-in, the real
// QuiesceClone document validating every parameter, a scripted `hostagent
// clone` on the target that checks what it was given is really attached.

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/clone"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/handler"
	"github.com/quiesce/quiesce/ssmdoc"
	"github.com/quiesce/quiesce/test/awslocal"
	"github.com/quiesce/quiesce/test/lambdaenv"
	"github.com/quiesce/quiesce/test/syncbuf"
)

const (
	stack   = "qtest"
	source  = "i-0123456789abcdef0"
	target  = "i-0000000000000beef"
	dataVol = "vol-00000000000000da7"
	logsVol = "vol-00000000000001095"
)

// newTargetHost is a scripted hostagent clone: every --volume must be
// attached to the target at the device its snapshot was taken from, paired
// with the mount of that snapshot.
func newTargetHost(srv *awslocal.Server) *lambdaenv.Host {
	return &lambdaenv.Host{Check: func(inv awslocal.Invocation) string {
		byID := map[string]awslocal.Volume{}
		for _, v := range srv.Volumes() {
			byID[v.ID] = v
		}
		vols, mounts := strings.Split(inv.Param("volumes"), ","), strings.Split(inv.Param("mounts"), ",")
		for i, id := range vols {
			v := byID[id]
			snap, _ := srv.Snapshot(v.SnapshotID)
			if v.InstanceID != inv.InstanceID || v.AttachState != "attached" || v.Device != snap.Tags["quiesce:device"] || i >= len(mounts) || mounts[i] != snap.Tags["quiesce:mounts"] {
				return "volume " + id + " not attached as its snapshot says: " + v.Device + " " + v.AttachState
			}
		}
		return ""
	}, Pass: func(inv awslocal.Invocation) awslocal.CommandResult {
		vols, mounts := strings.Split(inv.Param("volumes"), ","), strings.Split(inv.Param("mounts"), ",")
		return report(contract.CloneReport{OK: true, Volumes: vols, Mounts: mounts, LeftRunning: true,
			Replica: &contract.ReplicaChannel{IORunning: "Yes", SQLRunning: "Yes"}}, 0)
	}}
}

func report(r contract.CloneReport, code int) awslocal.CommandResult {
	for _, s := range []*[]string{&r.Problems, &r.Notes, &r.Removed} {
		if *s == nil {
			*s = []string{}
		}
	}
	return lambdaenv.Report(r, code)
}

type env struct {
	t      *testing.T
	srv    *awslocal.Server
	host   *lambdaenv.Host
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
	host := newTargetHost(srv)
	srv.RunCommand = host.Run
	srv.AddInstance(awslocal.Instance{ID: source, AvailabilityZone: "us-east-1a", BlockDevices: []awslocal.BlockDevice{
		{DeviceName: "/dev/xvda", VolumeID: "vol-0000000000000root"}, {DeviceName: "/dev/sdf", VolumeID: dataVol, SizeGiB: 100}, {DeviceName: "/dev/sdg", VolumeID: logsVol, SizeGiB: 20}}})
	srv.AddInstance(awslocal.Instance{ID: target, AvailabilityZone: "us-east-1b", Tags: map[string]string{"quiesce:role": "clone-target"},
		BlockDevices: []awslocal.BlockDevice{{DeviceName: "/dev/xvda", VolumeID: "vol-00000000000troot"}}})
	c := lambdaenv.Start(t, srv, handler.Retryer)
	e := &env{t: t, srv: srv, host: host, sets: map[string][]string{}}
	r := clone.NewRunner(c.EC2, c.SSM, nil, slog.New(slog.NewJSONHandler(&syncbuf.Buffer{}, nil)))
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
	vols := []lambdaenv.SetVolume{{VolumeID: dataVol, Device: "/dev/sdf", Mount: "/var/lib/mysql"}, {VolumeID: logsVol, Device: "/dev/sdg", Mount: "/var/log/mysql"}}
	e.sets[runID] = append(e.sets[runID], lambdaenv.AddSet(e.srv, stack, source, runID, at, consistency, vols, extra)...)
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

func (e *env) cloneVolumes() []awslocal.Volume { return lambdaenv.CreatedVolumes(e.srv) }

func (e *env) hostErrors() {
	e.t.Helper()
	for _, msg := range e.host.Errors() {
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
	inv := e.host.Invocations()[0]
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
	if err != nil || res.Status != clone.StatusReplicating || len(e.host.Invocations()) != 1 || len(e.cloneVolumes()) != 2 {
		t.Errorf("again: %+v %v; %d commands, %d volumes", res, err, len(e.host.Invocations()), len(e.cloneVolumes()))
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
	inv := e.host.Invocations()[0]
	if inv.Param("sourceHost") != "db-primary.internal" || inv.Param("sourcePort") != "3307" || inv.Param("sourceGtid") != "" ||
		inv.Param("sourceLogFile") != "mysql-bin.000777" || inv.Param("sourceLogPos") != "1234" {
		t.Errorf("parameters %v", inv.Parameters)
	}
}

// Replication that will not start: exit 6; the result carries hostagent's
// reason, the invocation fails, and the volumes are detached and deleted.
func TestCloneFailedReleasesVolumes(t *testing.T) {
	e := newEnv(t)
	e.host.Result = func(inv awslocal.Invocation) awslocal.CommandResult {
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
	e.host.Result = func(inv awslocal.Invocation) awslocal.CommandResult {
		return report(contract.CloneReport{Volumes: strings.Split(inv.Param("volumes"), ","), Problems: []string{"replication will not start"}}, 6)
	}
	e.srv.VolumeDelays.Detach = 1500 * time.Millisecond
	res, err := e.run(primaryEvent, time.Second)
	var fe *clone.FailedError
	if !errors.As(err, &fe) || res.Status != clone.StatusFailed || res.VolumesDeleted || len(e.cloneVolumes()) != 2 {
		t.Fatalf("first: %+v %v (%d volumes)", res, err, len(e.cloneVolumes()))
	}
	res, err = e.run(primaryEvent, time.Minute)
	if !errors.As(err, &fe) || !res.VolumesDeleted || len(e.cloneVolumes()) != 0 || len(e.host.Invocations()) != 1 {
		t.Fatalf("second: %+v %v (%d volumes, %d commands)", res, err, len(e.cloneVolumes()), len(e.host.Invocations()))
	}
}

// An invocation out of time returns in_progress; the next one follows the
// same command (never a second one) to its end.
func TestCloneResumesAcrossInvocations(t *testing.T) {
	e := newEnv(t)
	e.host.Release = make(chan struct{})
	res, err := e.run(primaryEvent, 2*time.Second)
	if err != nil || res.Status != clone.StatusInProgress {
		t.Fatalf("first: %+v %v", res, err)
	}
	close(e.host.Release)
	res, err = e.run(primaryEvent, time.Minute)
	if err != nil || res.Status != clone.StatusReplicating || len(e.host.Invocations()) != 1 {
		t.Fatalf("second: %+v %v (%d commands)", res, err, len(e.host.Invocations()))
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
			if calls := e.srv.CallsOf("CreateVolume"); len(calls) != 0 || len(e.host.Invocations()) != 0 {
				t.Errorf("%d CreateVolume calls, %d commands", len(calls), len(e.host.Invocations()))
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
