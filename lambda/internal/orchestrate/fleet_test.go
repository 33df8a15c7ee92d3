package orchestrate_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/orchestrate"
	"github.com/quiesce/quiesce/test/awslocal"
	"github.com/quiesce/quiesce/test/fakehost"
)

const (
	inst2 = "i-0123456789abcd002"
	inst3 = "i-0123456789abcd003"
	inst4 = "i-0123456789abcd004"
	inst5 = "i-0123456789abcd005"
	inst6 = "i-0123456789abcd006"
)

func TestWireTargetsAndOverrides(t *testing.T) {
	e := newEnv(t)
	on := map[string]string{"quiesce:enabled": "true"}
	withTags := func(extra map[string]string) map[string]string {
		m := map[string]string{"quiesce:enabled": "true"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	addDB(e.srv, e.host, inst2, withTags(map[string]string{"quiesce:mounts": "/var/lib/mysql", "quiesce:mysql-lock": "none", "quiesce:freeze-timeout": "9s"}))
	addDB(e.srv, e.host, inst3, on)
	e.srv.AddInstance(awslocal.Instance{ID: inst4, State: "stopped", Tags: on})
	addDB(e.srv, e.host, inst5, on)
	e.srv.SetPingStatus(inst5, "ConnectionLost")
	addDB(e.srv, e.host, inst6, withTags(map[string]string{"quiesce:mysql-lock": "global"}))
	e.host.AutoLock = contract.LockNone

	// inst is listed by ID without the tag; the others come from the tag.
	e.srv.AddInstance(awslocal.Instance{ID: inst, Tags: map[string]string{"Name": "db1"}, BlockDevices: []awslocal.BlockDevice{
		{DeviceName: "/dev/xvda", VolumeID: vol(rootVol, inst)}, {DeviceName: "/dev/sdf", VolumeID: vol(dataVol, inst)}, {DeviceName: "/dev/sdg", VolumeID: vol(logsVol, inst)}}})
	res, err := e.run(nil, `{"targets":{"instance_ids":["`+inst+`","i-0fffffffffffffff0"],"tags":{"quiesce:enabled":"true"}},"mounts":["/var/lib/mysql","/var/lib/mysql-binlog"],"freeze_timeout":"5s","max_concurrency":2}`)
	var re *orchestrate.RunError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v", err)
	}
	e.assertHonest(res)
	want := map[string]struct{ status, reason string }{
		inst:                  {orchestrate.StatusOK, ""},
		"i-0fffffffffffffff0": {orchestrate.StatusFailed, "not found"},
		inst2:                 {orchestrate.StatusOK, ""},
		inst3:                 {orchestrate.StatusOK, ""},
		inst4:                 {orchestrate.StatusSkipped, "state is stopped"},
		inst5:                 {orchestrate.StatusFailed, "ConnectionLost"},
		inst6:                 {orchestrate.StatusFailed, `tag quiesce:mysql-lock "global"`},
	}
	if len(res.Instances) != len(want) {
		t.Fatalf("instances = %+v", res.Instances)
	}
	for _, r := range res.Instances {
		w := want[r.InstanceID]
		if r.Status != w.status || !strings.Contains(r.Reason, w.reason) {
			t.Errorf("%s: %s %q, want %s %q", r.InstanceID, r.Status, r.Reason, w.status, w.reason)
		}
	}
	if res.OK != 3 || res.Failed != 3 || res.Skipped != 1 {
		t.Fatalf("counts ok=%d failed=%d skipped=%d", res.OK, res.Failed, res.Skipped)
	}
	// Overrides reached the SSM parameters of inst2, and one volume means
	// one CreateSnapshot with complete tags.
	for _, c := range e.host.Calls() {
		if c.InstanceID == inst2 && c.Action == "freeze" {
			if c.Params["mounts"][0] != "/var/lib/mysql" || c.Params["mysqlLock"][0] != "none" || c.Params["timeout"][0] != "9s" {
				t.Fatalf("inst2 freeze params = %v", c.Params)
			}
		}
	}
	r2 := instResult(t, res, inst2)
	if r2.SnapshotAPI != orchestrate.APICreateSnapshot || len(r2.Snapshots) != 1 || r2.Consistency != orchestrate.Application || r2.Lock.Mode != "none" {
		t.Fatalf("inst2 = %+v", r2)
	}
	for _, s := range e.srv.Snapshots() {
		if s.Tags["quiesce:instance"] == inst2 && (s.Tags["quiesce:lock"] != "none" || s.Tags["quiesce:device"] != "/dev/sdf" || s.Tags["quiesce:binlog-file"] != "") {
			t.Fatalf("inst2 snapshot tags = %v", s.Tags)
		}
	}
	// No command ever went to instances that were excluded.
	for _, c := range e.host.Calls() {
		if c.InstanceID == inst4 || c.InstanceID == inst5 || c.InstanceID == inst6 {
			t.Fatalf("command sent to excluded %s", c.InstanceID)
		}
	}
}

func TestWireOneFailureDoesNotStopOthers(t *testing.T) {
	e := newEnv(t)
	addDB(e.srv, e.host, inst2, nil)
	addDB(e.srv, e.host, inst3, nil)
	e.host.Override = func(inv awslocal.Invocation) (awslocal.CommandResult, bool) {
		if inv.InstanceID == inst2 && inv.Param("action") == "freeze" {
			panicky := fakehost.Fail(contract.ExitBusy, "busy")
			return panicky, true
		}
		return awslocal.CommandResult{}, false
	}
	res, err := e.run(nil, `{"targets":{"instance_ids":["`+inst+`","`+inst2+`","`+inst3+`"]},"mounts":["/var/lib/mysql"],"max_concurrency":1}`)
	var re *orchestrate.RunError
	if !errors.As(err, &re) || len(re.Failed) != 1 || !strings.HasPrefix(re.Failed[0], inst2) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), `result={"run_id"`) {
		t.Fatalf("RunError message lacks the result: %v", err)
	}
	if res.OK != 2 || instResult(t, res, inst3).Status != orchestrate.StatusOK {
		t.Fatalf("result = %+v", res)
	}
	e.assertHonest(res)
}

func TestWireDryRunChecksOnly(t *testing.T) {
	e := newEnv(t)
	res, err := e.run(nil, `{"targets":{"instance_ids":["`+inst+`"]},"mounts":["/var/lib/mysql","/var/lib/mysql-binlog"],"dry_run":true,"retention":{"keep_last":1}}`)
	if err != nil {
		t.Fatal(err)
	}
	r := instResult(t, res, inst)
	if r.Status != orchestrate.StatusOK || r.Check == nil || !r.Check.OK || len(r.Check.Mounts) != 2 {
		t.Fatalf("dry run result = %+v", r)
	}
	if got := e.host.Actions(inst); strings.Join(got, ",") != "check" {
		t.Fatalf("host actions = %v", got)
	}
	if len(e.srv.Snapshots()) != 0 || len(e.srv.CallsOf("DescribeSnapshots")) != 0 || len(e.srv.CallsOf("DeleteSnapshot")) != 0 {
		t.Fatal("dry run touched snapshots")
	}
	// A failing preflight is a failed instance.
	delete(e.host.Volumes[inst], "/var/lib/mysql")
	_, err = e.run(nil, `{"targets":{"instance_ids":["`+inst+`"]},"mounts":["/var/lib/mysql"],"dry_run":true}`)
	if err == nil || !strings.Contains(err.Error(), "preflight failed") {
		t.Fatalf("err = %v", err)
	}
}

func TestWireRetention(t *testing.T) {
	e := newEnv(t)
	old := time.Now().Add(-72 * time.Hour)
	d, l := vol(dataVol, inst), vol(logsVol, inst)
	mk := func(v string, age time.Duration, stackTag string) string {
		return e.srv.AddSnapshot(awslocal.Snapshot{VolumeID: v, StartTime: old.Add(-age), Tags: map[string]string{"quiesce:stack": stackTag, "quiesce:consistency": "application"}})
	}
	keep1 := mk(d, 0, stack)
	gone1 := mk(d, time.Hour, stack)
	inUse := mk(d, 2*time.Hour, stack)
	e.srv.SetSnapshotInUse(inUse, true)
	keep2 := mk(l, time.Hour, stack)
	gone2 := mk(l, 2*time.Hour, stack)
	others := mk(d, 5*time.Hour, "other-stack")
	// Many old snapshots of another volume of the stack: pagination.
	var many []string
	for i := 0; i < 1200; i++ {
		many = append(many, mk("vol-0retired", time.Duration(i)*time.Minute, stack))
	}
	res, err := e.run(nil, `{"targets":{"instance_ids":["`+inst+`"]},"mounts":["/var/lib/mysql","/var/lib/mysql-binlog"],"retention":{"keep_last":2}}`)
	if err != nil {
		t.Fatal(err)
	}
	e.assertHonest(res)
	left := map[string]bool{}
	for _, s := range e.srv.Snapshots() {
		left[s.ID] = true
	}
	for _, id := range []string{keep1, keep2, inUse, others, many[0], many[1]} {
		if !left[id] {
			t.Errorf("%s was pruned", id)
		}
	}
	for _, id := range []string{gone1, gone2, many[2], many[1199]} {
		if left[id] {
			t.Errorf("%s was kept", id)
		}
	}
	for _, s := range instResult(t, res, inst).Snapshots {
		if !left[s.SnapshotID] {
			t.Errorf("this run's %s was pruned", s.SnapshotID)
		}
	}
	rr := res.Retention
	if rr == nil || len(rr.Pruned) != 2+1198 || len(rr.InUse) != 1 || rr.InUse[0] != inUse || rr.Scope != "stack" {
		t.Fatalf("retention = pruned %d inUse %v scope %q errors %v", len(rr.Pruned), rr.InUse, rr.Scope, rr.Errors)
	}
	if !contains(e.emf.String(), `"snapshots_pruned":1200`) {
		t.Fatalf("EMF: %s", e.emf.String())
	}
	if n := len(e.srv.CallsOf("DescribeSnapshots")); n < 3 {
		t.Fatalf("DescribeSnapshots calls = %d: listing was not paginated", n)
	}
}

func TestWireScheduledEventUsesEnvTargetTagKeyOnly(t *testing.T) {
	e := newEnv(t)
	addDB(e.srv, e.host, inst2, map[string]string{"backup": "whatever"})
	cfg := e.config(`{"source":"aws.scheduler","detail-type":"Scheduled Event"}`, "QUIESCE_TARGET_TAG_KEY", "backup", "QUIESCE_MOUNTS", "/var/lib/mysql")
	res, err := e.runner.Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Instances) != 1 || res.Instances[0].InstanceID != inst2 || res.Instances[0].Status != orchestrate.StatusOK {
		t.Fatalf("instances = %+v", res.Instances)
	}
	if f := e.srv.CallsOf("DescribeInstances")[0].Form; f.Get("Filter.1.Name") != "tag-key" || f.Get("Filter.1.Value.1") != "backup" {
		t.Fatalf("filter = %v", f)
	}
	e.assertHonest(res)
}
