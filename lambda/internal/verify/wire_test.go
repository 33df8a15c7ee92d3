package verify_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/handler"
	"github.com/quiesce/quiesce/lambda/internal/orchestrate"
	"github.com/quiesce/quiesce/lambda/internal/retention"
	"github.com/quiesce/quiesce/lambda/internal/verify"
	"github.com/quiesce/quiesce/test/awslocal"
)

// The whole flow against the stand-in with the real SDK clients: the newest
// complete application set is restored in the verifier's zone, attached at
// free device names, checked, released, and its snapshots tagged ok.
func TestWireVerifyOK(t *testing.T) {
	e := newEnv(t, true)
	res, err := e.run(baseEvent, 0)
	if err != nil {
		t.Fatal(err)
	}
	v := only(t, res)
	if v.Status != verify.StatusOK || v.RunID != "r-new" || res.Verifier != verifier || v.Report == nil || v.Report.TablesChecked != 12 {
		t.Fatalf("verification = %+v (result %+v)", v, res)
	}
	for _, tags := range e.snapTags("r-new") {
		if tags[contract.TagVerified] != "ok" || tags[contract.TagVerifiedAt] == "" || tags[contract.TagVerifyNote] != "" {
			t.Fatalf("r-new snapshot tags = %v", tags)
		}
	}
	for _, run := range []string{"r-old", "r-crash", "r-incomplete"} {
		for _, tags := range e.snapTags(run) {
			if tags[contract.TagVerified] != "" {
				t.Fatalf("%s was touched: %v", run, tags)
			}
		}
	}
	// Volumes: from the set's snapshots, in the verifier's zone, tagged at creation.
	creates := e.srv.CallsOf("CreateVolume")
	if len(creates) != 2 {
		t.Fatalf("CreateVolume calls = %d", len(creates))
	}
	for i, c := range creates {
		tags := c.Tags()
		if c.Form.Get("AvailabilityZone") != "us-east-1b" || c.Form.Get("SnapshotId") != e.sets["r-new"][i] || c.Form.Get("TagSpecification.1.ResourceType") != "volume" ||
			tags["quiesce:stack"] != stack || tags["quiesce:purpose"] != "verify" || tags["quiesce:source-snapshot"] != e.sets["r-new"][i] ||
			tags["quiesce:run-id"] != "r-new" || tags["quiesce:verify-state"] != "creating" || c.Form.Get("ClientToken") == "" {
			t.Fatalf("CreateVolume %d: %v", i, c.Form)
		}
	}
	// Attached at /dev/sdg and /dev/sdh: /dev/sdf is /dev/xvdf on the verifier.
	var devices []string
	for _, c := range e.srv.CallsOf("AttachVolume") {
		if c.Form.Get("InstanceId") != verifier {
			t.Fatalf("attached to %s", c.Form.Get("InstanceId"))
		}
		devices = append(devices, c.Form.Get("Device"))
	}
	if strings.Join(devices, ",") != "/dev/sdg,/dev/sdh" {
		t.Fatalf("attach devices = %v", devices)
	}
	invs := e.host.Invocations()
	if len(invs) != 1 || invs[0].DocumentName != verify.DefaultDocument || invs[0].InstanceID != verifier {
		t.Fatalf("verify commands = %+v", invs)
	}
	p := invs[0]
	if p.Param("expectBinlogFile") != "mysql-bin.000042" || p.Param("expectBinlogPos") != "4711" || p.Param("expectGtid") != "0-1-1234" ||
		p.Param("runId") != "r-new" || p.Param("timeout") != "350m" || len(strings.Split(p.Param("volumes"), ",")) != 2 {
		t.Fatalf("verify parameters = %v", p.Parameters)
	}
	for _, c := range e.srv.CallsOf("DetachVolume") {
		if c.Form.Get("Force") == "true" {
			t.Fatalf("a clean finish forced a detach: %v", c.Form)
		}
	}
	e.assertClean()
	emf := e.emf.String()
	for _, want := range []string{`"restores_verified":1`, `"restore_start_ms":1234`, `"verify_seconds"`, `"Namespace":"Quiesce"`} {
		if !strings.Contains(emf, want) {
			t.Fatalf("EMF lacks %s: %s", want, emf)
		}
	}

	// Verified less than "every" ago: the instance is not due.
	res, err = e.run(baseEvent, 0)
	if err != nil || len(res.Verifications) != 0 || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Reason, "next due") {
		t.Fatalf("second run: %v %+v", err, res)
	}
	e.requireCreateVolumeCalls(t, 2, "second run created volumes (%d calls)")
	// An explicit run is verified whatever was verified when.
	res, err = e.run(`{"action":"verify","run_id":"r-old","targets":{"instance_ids":["`+source+`"]}}`, 0)
	if v := only(t, res); err != nil || v.Status != verify.StatusOK || v.RunID != "r-old" {
		t.Fatalf("explicit run: %v %+v", err, res)
	}
	e.assertClean()
}

// Exit 6: the set is tagged failed with the first problem, volumes deleted.
func TestWireVerifyFailed(t *testing.T) {
	e := newEnv(t, true)
	e.host.Result = func(inv awslocal.Invocation) awslocal.CommandResult {
		return report(contract.VerifyReport{Volumes: strings.Split(inv.Param("volumes"), ","), StartMS: 900,
			TablesFailed: []contract.TableFailure{{Table: "bank.accounts", Message: "Corrupt"}},
			Problems:     []string{"CHECK TABLE bank.accounts: Corrupt", "binlog mysql-bin.000042 is 4000 bytes, tagged position 4711"}}, 6)
	}
	res, err := e.run(baseEvent, 0)
	if err != nil {
		t.Fatal(err)
	}
	v := only(t, res)
	if v.Status != verify.StatusFailed || v.Reason != "CHECK TABLE bank.accounts: Corrupt" {
		t.Fatalf("verification = %+v", v)
	}
	for _, tags := range e.snapTags("r-new") {
		if tags[contract.TagVerified] != "failed" || tags[contract.TagVerifyNote] != "CHECK TABLE bank.accounts: Corrupt" {
			t.Fatalf("snapshot tags = %v", tags)
		}
	}
	if !strings.Contains(e.emf.String(), `"restores_failed":1`) {
		t.Fatalf("EMF: %s", e.emf.String())
	}
	e.assertClean()
}

// The first invocation's deadline hits while hostagent runs; the second
// (a fresh runner: nothing carried in memory) finds the volumes by tag,
// polls the same command and finishes.
func TestWireVerifyResumed(t *testing.T) {
	e := newEnv(t, true)
	e.host.Release = make(chan struct{})
	res, err := e.run(baseEvent, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	v := only(t, res)
	if v.Status != verify.StatusInProgress || v.State != verify.StateRunning || v.CommandID == "" {
		t.Fatalf("first invocation: %+v", v)
	}
	vols := e.verifyVolumes()
	if len(vols) != 2 {
		t.Fatalf("volumes in progress = %+v", vols)
	}
	for _, vol := range vols {
		if vol.Tags[contract.TagVerifyState] != verify.StateRunning || vol.Tags[contract.TagVerifyCommand] != v.CommandID || vol.Tags[contract.TagVerifyStarted] == "" || vol.InstanceID != verifier {
			t.Fatalf("progress tags = %+v", vol)
		}
	}
	close(e.host.Release)
	e.runner = e.newRunner()
	res, err = e.run(baseEvent, 0)
	if err != nil {
		t.Fatal(err)
	}
	if v2 := only(t, res); v2.Status != verify.StatusOK || v2.CommandID != v.CommandID {
		t.Fatalf("second invocation: %+v", v2)
	}
	if n := len(e.srv.CallsOf("SendCommand")); n != 1 {
		t.Fatalf("SendCommand calls = %d, want 1", n)
	}
	e.requireCreateVolumeCalls(t, 2, "CreateVolume calls = %d, want 2")
	e.assertClean()
}

// A verifier that never answers: the set is failed with the reason and the
// volumes are force-detached and deleted.
func TestWireVerifierNeverAnswers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(e *env)
		// second: a second invocation after the first stopped in progress.
		second func(e *env)
		reason string
	}{
		{"command lost", func(e *env) {
			e.runner.LostAfter = 300 * time.Millisecond
			e.srv.SetFault("GetCommandInvocation", awslocal.Fault{Code: "InvocationDoesNotExist"})
		}, nil, "lost: SSM has no invocation"},
		{"command timed out", func(e *env) {
			e.host.Result = func(awslocal.Invocation) awslocal.CommandResult {
				return awslocal.CommandResult{Status: "TimedOut", ResponseCode: -1}
			}
		}, nil, "ended TimedOut"},
		{"verifier stopped", func(e *env) { e.host.Release = make(chan struct{}) },
			func(e *env) { e.srv.SetInstanceState(verifier, "stopped") }, "verifier " + verifier + " is stopped"},
		{"verifier terminated and gone from SSM", func(e *env) { e.host.Release = make(chan struct{}) },
			func(e *env) {
				e.srv.SetInstanceState(verifier, "terminated")
				e.srv.SetPingStatus(verifier, "ConnectionLost")
			}, "is terminated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true)
			tc.setup(e)
			first := 3 * time.Second
			if tc.second != nil {
				first = time.Second // stops in progress: no need to wait long
			}
			res, err := e.run(baseEvent, first)
			if err != nil {
				t.Fatal(err)
			}
			if tc.second != nil {
				if v := only(t, res); v.Status != verify.StatusInProgress {
					t.Fatalf("first invocation: %+v", v)
				}
				tc.second(e)
				if res, err = e.run(baseEvent, 3*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			v := only(t, res)
			if v.Status != verify.StatusFailed || !strings.Contains(v.Reason, tc.reason) {
				t.Fatalf("verification = %+v, want failed with %q", v, tc.reason)
			}
			for _, tags := range e.snapTags("r-new") {
				if tags[contract.TagVerified] != "failed" || !strings.Contains(tags[contract.TagVerifyNote], tc.reason) {
					t.Fatalf("snapshot tags = %v", tags)
				}
			}
			forced := false
			for _, c := range e.srv.CallsOf("DetachVolume") {
				forced = forced || c.Form.Get("Force") == "true"
			}
			if !forced {
				t.Fatalf("no forced detach: %+v", e.srv.CallsOf("DetachVolume"))
			}
			e.assertClean()
		})
	}
}

// Past VerifyMaxHours the set is failed with that reason and no volume is left.
func TestWireVerifyMaxHours(t *testing.T) {
	e := newEnv(t, true)
	e.host.Release = make(chan struct{}) // hostagent never answers
	res, err := e.run(`{"action":"verify","targets":{"instance_ids":["`+source+`"]},"verify":{"max_hours":2}}`, time.Second)
	if err != nil || only(t, res).Status != verify.StatusInProgress {
		t.Fatalf("first invocation: %v %+v", err, res)
	}
	if p := e.host.Invocations()[0].Param("timeout"); p != "110m" {
		t.Fatalf("hostagent timeout = %s, want VerifyMaxHours minus the margin", p)
	}
	e.clock.Advance(2*time.Hour + time.Minute)
	res, err = e.run(`{"action":"verify","targets":{"instance_ids":["`+source+`"]},"verify":{"max_hours":2}}`, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if v := only(t, res); v.Status != verify.StatusFailed || v.Reason != "verification exceeded VerifyMaxHours (2h) without an answer" {
		t.Fatalf("verification = %+v", v)
	}
	for _, tags := range e.snapTags("r-new") {
		if tags[contract.TagVerified] != "failed" || !strings.Contains(tags[contract.TagVerifyNote], "VerifyMaxHours") {
			t.Fatalf("snapshot tags = %v", tags)
		}
	}
	e.assertClean()
}

// Retention running while a verification restores an old set keeps that
// set; once the verification is over, retention may prune it.
func TestWireRetentionRacingAVerification(t *testing.T) {
	e := newEnv(t, true)
	e.host.Release = make(chan struct{})
	ev := `{"action":"verify","run_id":"r-old","targets":{"instance_ids":["` + source + `"]}}`
	if res, err := e.run(ev, time.Second); err != nil || only(t, res).Status != verify.StatusInProgress {
		t.Fatalf("first invocation: %v %+v", err, res)
	}
	pol := retention.Policy{Stack: stack, RunID: "r-now", KeepLast: 1, Now: e.clock.Now()}
	out, err := retention.Prune(context.Background(), e.EC2, pol, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Verifying) != 2 {
		t.Fatalf("retention outcome %+v: want r-old's two snapshots kept for the verification", out)
	}
	e.snapTags("r-old") // fails the test if one is gone
	close(e.host.Release)
	if res, err := e.run(ev, 0); err != nil || only(t, res).Status != verify.StatusOK {
		t.Fatalf("second invocation: %v %+v", err, res)
	}
	e.assertClean()
	out, err = retention.Prune(context.Background(), e.EC2, pol, slog.New(slog.DiscardHandler))
	if err != nil || len(out.Verifying) != 0 {
		t.Fatalf("retention after the verification: %v %+v", err, out)
	}
	for _, id := range e.sets["r-old"] {
		if _, ok := e.srv.Snapshot(id); ok {
			t.Fatalf("r-old snapshot %s survived retention after its verification", id)
		}
	}
}

// No verifier: a clear error, nothing created.
func TestWireNoVerifier(t *testing.T) {
	for name, setup := range map[string]func(e *env){
		"none tagged": func(e *env) {},
		"not online": func(e *env) {
			e.srv.AddInstance(awslocal.Instance{ID: verifier, Tags: map[string]string{"quiesce:role": "verifier"}, PingStatus: "ConnectionLost"})
		},
		"stopped": func(e *env) {
			e.srv.AddInstance(awslocal.Instance{ID: verifier, Tags: map[string]string{"quiesce:role": "verifier"}, State: "stopped"})
		},
		"other tag value": func(e *env) {
			e.srv.AddInstance(awslocal.Instance{ID: verifier, Tags: map[string]string{"quiesce:role": "verifier-staging"}})
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, false)
			setup(e)
			_, err := e.run(baseEvent, 0)
			if !errors.Is(err, verify.ErrNoVerifier) || !strings.Contains(err.Error(), "quiesce:role=verifier") {
				t.Fatalf("error = %v, want ErrNoVerifier naming the tag", err)
			}
			e.requireCreateVolumeCalls(t, 0, "CreateVolume calls = %d")
			e.assertClean()
		})
	}
}

// An AWS call that keeps failing fails the invocation (the errors alarm
// fires) and leaves the verification where it was; the next invocation
// resumes from the volumes' tags and finishes it.
func TestWireVerifyStepErrorIsResumed(t *testing.T) {
	e := newEnv(t, true)
	e.srv.SetFault("AttachVolume", awslocal.Fault{Code: "UnauthorizedOperation", Message: "not authorized to attach"})
	res, err := e.run(baseEvent, 0)
	if err == nil || !strings.Contains(err.Error(), "UnauthorizedOperation") {
		t.Fatalf("error = %v, want the attach failure", err)
	}
	if v := only(t, res); v.Status != verify.StatusInProgress || v.State != verify.StateCreating || len(e.verifyVolumes()) != 2 {
		t.Fatalf("verification = %+v, volumes %+v", v, e.verifyVolumes())
	}
	e.srv.ClearFaults("AttachVolume")
	res, err = e.run(baseEvent, 0)
	if v := only(t, res); err != nil || v.Status != verify.StatusOK {
		t.Fatalf("resumed: %v %+v", err, v)
	}
	e.requireCreateVolumeCalls(t, 2, "CreateVolume calls = %d: the resumed run made new volumes")
	e.assertClean()
}

// The Lambda handler dispatches "action":"verify" to the verify runner and
// rejects bad verify options before touching anything.
func TestWireHandlerDispatchesVerify(t *testing.T) {
	e := newEnv(t, true)
	env := map[string]string{"QUIESCE_STACK": stack}
	h := &handler.Handler{Runner: orchestrate.NewRunner(e.EC2, e.SSM, e.clock, nil, nil), Verifier: e.runner,
		Getenv: func(k string) string { return env[k] }, Log: slog.New(slog.NewJSONHandler(e.logs, nil))}
	out, err := h.Handle(context.Background(), json.RawMessage(baseEvent))
	res, ok := out.(*verify.Result)
	if err != nil || !ok || only(t, res).Status != verify.StatusOK {
		t.Fatalf("Handle = %+v, %v", out, err)
	}
	_, err = h.Handle(context.Background(), json.RawMessage(`{"action":"verify","targets":{"instance_ids":["`+source+`"]},"verify":{"max_hours":99}}`))
	var ve *event.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), `verify.max_hours "99"`) {
		t.Fatalf("bad options: %v", err)
	}
	e.requireCreateVolumeCalls(t, 2, "CreateVolume calls = %d")
	e.assertClean()
}

// hostagent busy (exit 3) is not the set's failure: the command is sent
// again after BusyRetry and the set verified.
func TestWireVerifierBusyIsRetried(t *testing.T) {
	e := newEnv(t, true)
	busy := true
	e.host.Result = func(inv awslocal.Invocation) awslocal.CommandResult {
		if busy {
			busy = false
			return awslocal.CommandResult{ResponseCode: 3, Stdout: `{"error":"another verification holds the lock","exit_code":3}`}
		}
		return report(contract.VerifyReport{OK: true, Volumes: strings.Split(inv.Param("volumes"), ",")}, 0)
	}
	res, err := e.run(baseEvent, 0)
	if v := only(t, res); err != nil || v.Status != verify.StatusOK {
		t.Fatalf("verification: %v %+v", err, v)
	}
	sends := e.srv.CallsOf("SendCommand")
	if len(sends) != 2 || sends[1].At.Sub(sends[0].At) < 50*time.Millisecond {
		t.Fatalf("SendCommand calls = %d (%v): want a second one after BusyRetry", len(sends), sends)
	}
	e.assertClean()
}

// A set whose tags the verify document refuses (here a binlog file name
// with a space) fails at once with the reason, instead of retrying until
// VerifyMaxHours.
func TestWireVerifyParametersRefused(t *testing.T) {
	e := newEnv(t, true)
	e.addSet("r-odd", e.clock.Now(), "application", map[string]string{"quiesce:binlog-file": "bin log.000001"})
	res, err := e.run(baseEvent, 0)
	v := only(t, res)
	if err != nil || v.RunID != "r-odd" || v.Status != verify.StatusFailed || !strings.Contains(v.Reason, "refused the parameters") || !strings.Contains(v.Reason, "expectBinlogFile") {
		t.Fatalf("verification: %v %+v", err, v)
	}
	e.assertClean()
}

// Volumes tagged as this stack's verify volumes go in the end whatever their
// tags say: one without any progress tag (failed: nothing to verify), and two
// claiming the same source snapshot of r-old (a verification of r-old in
// progress, which is finished: the duplicate is deleted with the rest).
func TestWireStrayVerifyVolumesAreDeleted(t *testing.T) {
	e := newEnv(t, true)
	mk := func(kv ...string) {
		tags := []ec2types.Tag{{Key: aws.String("quiesce:stack"), Value: aws.String(stack)}, {Key: aws.String("quiesce:purpose"), Value: aws.String("verify")}}
		for i := 0; i+1 < len(kv); i += 2 {
			tags = append(tags, ec2types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
		}
		_, err := e.EC2.CreateVolume(context.Background(), &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: aws.String(e.sets["r-old"][0]),
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: tags}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	mk()
	dup := []string{"quiesce:run-id", "r-old", "quiesce:instance", source, "quiesce:source-snapshot", e.sets["r-old"][0], "quiesce:verify-state", "creating",
		"quiesce:verifier", verifier, "quiesce:verify-started", e.clock.Now().UTC().Format("2006-01-02T15:04:05Z")}
	mk(dup...)
	mk(dup...)
	// Someone else's volume is never touched.
	_, err := e.EC2.CreateVolume(context.Background(), &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: aws.String(e.sets["r-old"][0]),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: []ec2types.Tag{
			{Key: aws.String("quiesce:stack"), Value: aws.String("other-stack")}, {Key: aws.String("quiesce:purpose"), Value: aws.String("verify")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.run(baseEvent, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Verifications) != 2 || res.Verifications[0].Status != verify.StatusFailed || res.Verifications[0].VerifySeconds != 0 ||
		res.Verifications[1].RunID != "r-old" || res.Verifications[1].Status != verify.StatusOK {
		t.Fatalf("verifications: %+v", res.Verifications)
	}
	left := e.verifyVolumes()
	if len(left) != 1 || left[0].Tags["quiesce:stack"] != "other-stack" {
		t.Fatalf("volumes left: %+v", left)
	}
}

// Instances chosen by tag are verified one after the other in one
// invocation: never two verifications on the verifier at once.
func TestWireVerifyFleetOneAtATime(t *testing.T) {
	e := newEnv(t, true)
	const second = "i-0123456789abcdef1"
	e.srv.AddInstance(awslocal.Instance{ID: second, Tags: map[string]string{"quiesce:enabled": "true"}, BlockDevices: []awslocal.BlockDevice{{DeviceName: "/dev/xvda", VolumeID: "vol-0000000000002root"}}})
	e.srv.AddInstance(awslocal.Instance{ID: "i-0123456789abcdef2", Tags: map[string]string{"quiesce:enabled": "false"}})
	for i, run := range []string{"r-b1", "r-b2"} {
		id := e.srv.AddSnapshot(awslocal.Snapshot{VolumeID: "vol-0000000000002data", VolumeSize: 8, StartTime: e.clock.Now().Add(time.Duration(i-2) * time.Hour),
			Tags: map[string]string{"quiesce:stack": stack, "quiesce:run-id": run, "quiesce:instance": second, "quiesce:consistency": "application", "quiesce:device": "/dev/sdf"}})
		e.sets[run] = []string{id}
	}
	e.srv.CommandDelay = 20 * time.Millisecond
	res, err := e.run(`{"action":"verify","targets":{"tags":{"quiesce:enabled":"true"}}}`, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Verifications) != 2 || res.Verifications[0].InstanceID != source || res.Verifications[1].InstanceID != second ||
		res.Verifications[0].Status != verify.StatusOK || res.Verifications[1].Status != verify.StatusOK {
		t.Fatalf("verifications = %+v", res.Verifications)
	}
	// The second instance's set without expectations: no binlog tags on it.
	invs := e.host.Invocations()
	if len(invs) != 2 || invs[1].Param("expectBinlogFile") != "" || len(strings.Split(invs[1].Param("volumes"), ",")) != 1 {
		t.Fatalf("invocations = %+v", invs)
	}
	cmds := e.srv.Commands()
	if len(cmds) != 2 || !cmds[1].RequestedAt.After(cmds[0].EndedAt) {
		t.Fatalf("commands overlap: %+v", cmds)
	}
	for _, tags := range e.snapTags("r-b2") {
		if tags[contract.TagVerified] != "ok" {
			t.Fatalf("r-b2 (the newest of %s) not verified: %v", second, tags)
		}
	}
	e.assertClean()
}

// requireCreateVolumeCalls requires want CreateVolume calls so far; msg
// (with %d for the count) says what more would mean.
func (e *env) requireCreateVolumeCalls(t *testing.T, want int, msg string) {
	t.Helper()
	if n := len(e.srv.CallsOf("CreateVolume")); n != want {
		t.Fatalf(msg, n)
	}
}
