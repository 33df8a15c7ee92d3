package orchestrate_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/orchestrate"
	"github.com/quiesce/quiesce/test/awslocal"
	"github.com/quiesce/quiesce/test/fakehost"
)

func TestWireHappyPath(t *testing.T) {
	e := newEnv(t)
	res, err := e.run(nil, `{"targets":{"instance_ids":["`+inst+`"]},"mounts":["/var/lib/mysql","/var/lib/mysql-binlog"],"freeze_timeout":"5s","snapshot_tags":{"team":"db"},"mysql":{"lock":"auto"}}`)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	e.assertHonest(res)
	r := instResult(t, res, inst)
	if r.Status != orchestrate.StatusOK || r.Consistency != orchestrate.Application || r.SnapshotAPI != orchestrate.APICreateSnapshots {
		t.Fatalf("result = %+v", r)
	}
	if len(r.Snapshots) != 2 || !r.ThawSent || r.ThawedBy != contract.ThawedByCommand || r.WindowMS <= 0 || r.LambdaWindowMS < r.WindowMS {
		t.Fatalf("result = %+v", r)
	}
	// One CreateSnapshots: root and the unrelated data volume excluded.
	calls := e.srv.CallsOf("CreateSnapshots")
	if len(calls) != 1 {
		t.Fatalf("CreateSnapshots calls = %d", len(calls))
	}
	f := calls[0].Form
	if f.Get("InstanceSpecification.ExcludeBootVolume") != "true" || f.Get("InstanceSpecification.ExcludeDataVolumeId.1") != vol(otherVol, inst) || f.Get("InstanceSpecification.ExcludeDataVolumeId.2") != "" {
		t.Fatalf("CreateSnapshots form = %v", f)
	}
	if got := calls[0].Tags(); got["quiesce:consistency"] != "application" || got["quiesce:run-id"] != res.RunID || got["team"] != "db" || got["quiesce:lock"] != "ftwrl" ||
		got["quiesce:binlog-file"] != "mysql-bin.000042" || got["quiesce:binlog-pos"] != "4711" || got["quiesce:gtid"] != "0-1-1234" {
		t.Fatalf("creation tags = %v", got)
	}
	// Per-volume tags after the window, and the freeze parameters.
	snaps := e.srv.Snapshots()
	byVol := map[string]awslocal.Snapshot{}
	for _, s := range snaps {
		byVol[s.VolumeID] = s
	}
	if s := byVol[vol(dataVol, inst)]; s.Tags["quiesce:device"] != "/dev/sdf" || s.Tags["quiesce:mounts"] != "/var/lib/mysql" || s.Tags["quiesce:instance"] != inst {
		t.Fatalf("data snapshot tags = %v", s.Tags)
	}
	if s := byVol[vol(logsVol, inst)]; s.Tags["quiesce:device"] != "/dev/sdg" || s.Tags["quiesce:mounts"] != "/var/lib/mysql-binlog" {
		t.Fatalf("logs snapshot tags = %v", s.Tags)
	}
	fz := e.host.Calls()[0]
	want := map[string]string{"action": "freeze", "mounts": "/var/lib/mysql,/var/lib/mysql-binlog", "mysqlLock": "auto", "timeout": "5s", "lockWait": "5s"[:0] + "5s", "runId": res.RunID, "killLongQueries": "false"}
	for k, v := range want {
		if got := fz.Params[k]; len(got) != 1 || got[0] != v {
			t.Errorf("freeze parameter %s = %v, want %q", k, got, v)
		}
	}
	// The CreateSnapshots call happened while frozen, thaw after it returned.
	w := e.host.Windows()[0]
	if !calls[0].At.After(w.FrozenAt) || !w.ThawedAt.After(calls[0].At) {
		t.Fatalf("order: frozen %v, snapshot %v, thawed %v", w.FrozenAt, calls[0].At, w.ThawedAt)
	}
	if !contains(e.emf.String(), `"freeze_window_ms"`) || !contains(e.emf.String(), `"instances_ok":1`) || !contains(e.emf.String(), `"Namespace":"Quiesce"`) {
		t.Fatalf("EMF lines = %s", e.emf.String())
	}
}

func TestWireScenarios(t *testing.T) {
	type check func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult)
	okApp := func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
		if err != nil || r.Status != orchestrate.StatusOK || r.Consistency != orchestrate.Application || thawCount(e, inst) != 1 {
			t.Fatalf("want ok/application with one thaw: err=%v result=%+v thaws=%d", err, r, thawCount(e, inst))
		}
	}
	failedWith := func(reason string, thaws int, snaps int) check {
		return func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
			t.Helper()
			var re *orchestrate.RunError
			if !errors.As(err, &re) {
				t.Fatalf("want *RunError, got %v", err)
			}
			if r.Status != orchestrate.StatusFailed || !strings.Contains(r.Reason, reason) {
				t.Fatalf("want failed with %q, got %+v", reason, r)
			}
			if got := thawCount(e, inst); got != thaws {
				t.Fatalf("thaw commands run on host = %d, want %d (result %+v)", got, thaws, r)
			}
			if got := len(e.srv.Snapshots()); got != snaps {
				t.Fatalf("snapshots = %d, want %d", got, snaps)
			}
		}
	}
	freezeOverride := func(res awslocal.CommandResult) func(inv awslocal.Invocation) (awslocal.CommandResult, bool) {
		return func(inv awslocal.Invocation) (awslocal.CommandResult, bool) {
			if inv.Param("action") == "freeze" {
				return res, true
			}
			return awslocal.CommandResult{}, false
		}
	}
	tests := []struct {
		name  string
		setup func(e *env)
		ev    string
		ctx   func() (context.Context, context.CancelFunc)
		check check
	}{
		{"RequestLimitExceeded on CreateSnapshots is retried in the window", func(e *env) {
			e.srv.SetFault("CreateSnapshots", awslocal.Fault{Code: "RequestLimitExceeded", Times: 2})
		}, baseEvent, nil, func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
			okApp(t, e, res, err, r)
			if n := len(e.srv.CallsOf("CreateSnapshots")); n != 3 {
				t.Fatalf("CreateSnapshots calls = %d, want 3", n)
			}
		}},
		{"ThrottlingException on SendCommand and polls", func(e *env) {
			e.srv.SetFault("SendCommand", awslocal.Fault{Code: "ThrottlingException", Times: 1})
			e.srv.SetFault("GetCommandInvocation", awslocal.Fault{Code: "ThrottlingException", Times: 3})
		}, baseEvent, nil, okApp},
		{"InvocationDoesNotExist for the first polls", func(e *env) {
			e.srv.SetFault("GetCommandInvocation", awslocal.Fault{Code: "InvocationDoesNotExist", Times: 4})
		}, baseEvent, nil, okApp},
		{"5xx on CreateSnapshots after it took effect: duplicates are tagged crash+incomplete", func(e *env) {
			e.srv.SetFault("CreateSnapshots", awslocal.Fault{Code: "InternalError", Times: 1, AfterEffect: true})
		}, baseEvent, nil, func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
			okApp(t, e, res, err, r)
			n := e.countSnapshots(isApplication, func(s awslocal.Snapshot) bool {
				return s.Tags["quiesce:incomplete"] == "true" && s.Tags["quiesce:consistency"] == "crash"
			})
			app, orphan := n[0], n[1]
			if app != 2 || orphan != 2 {
				t.Fatalf("application=%d orphans=%d, want 2 and 2: %+v", app, orphan, e.srv.Snapshots())
			}
		}},
		{"5xx on the freeze SendCommand: not re-sent, thaw sent (and again at the end)", func(e *env) {
			e.srv.SetFault("SendCommand", awslocal.Fault{Code: "InternalServerError", Times: 1, AfterEffect: true})
		}, baseEvent, nil, func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
			failedWith("freeze outcome unknown", 2, 0)(t, e, res, err, r)
			if n := len(e.srv.CallsOf("SendCommand")); n != 3 {
				t.Fatalf("SendCommand calls = %d, want freeze once + two thaws", n)
			}
		}},
		// SSM took the freeze although SendCommand answered 5xx, and
		// delivers it after the Lambda's immediate thaw (which then finds
		// nothing to thaw): the thaw re-sent at the end of the run ends it.
		{"5xx on the freeze SendCommand and the freeze delivered after the thaw: thawed again", func(e *env) {
			e.srv.SetFault("SendCommand", awslocal.Fault{Code: "InternalServerError", Times: 1, AfterEffect: true})
			e.host.Override = func(inv awslocal.Invocation) (awslocal.CommandResult, bool) {
				if inv.Param("action") == "freeze" {
					time.Sleep(time.Second)
					return e.host.Default(inv), true
				}
				return awslocal.CommandResult{}, false
			}
		}, baseEvent, nil, func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
			failedWith("freeze outcome unknown", 2, 0)(t, e, res, err, r)
			if e.host.Held(inst) {
				t.Fatal("the late freeze is still held after the run")
			}
		}},
		{"freeze Failed exit 1: thaw sent as a precaution", func(e *env) {
			e.host.Override = freezeOverride(fakehost.Fail(contract.ExitFailed, "freeze /var/lib/mysql: operation not supported"))
		}, baseEvent, nil, failedWith("operation not supported", 1, 0)},
		{"freeze TimedOut: outcome unknown, thaw sent", func(e *env) {
			e.host.Override = freezeOverride(awslocal.CommandResult{Status: "TimedOut", ResponseCode: -1})
		}, baseEvent, nil, failedWith("freeze outcome unknown", 1, 0)},
		{"freeze output malformed: thaw sent", func(e *env) {
			e.host.Override = freezeOverride(awslocal.CommandResult{Status: "Success", Stdout: "{\"run_id\": truncated"})
		}, baseEvent, nil, failedWith("malformed FreezeReport", 1, 0)},
		{"exit 3 busy: nothing of ours held, no thaw", func(e *env) {
			e.host.Override = freezeOverride(fakehost.Fail(contract.ExitBusy, "mount /var/lib/mysql is held by run other-run"))
		}, baseEvent, nil, failedWith("another run holds a mount", 0, 0)},
		{"exit 5 lock timeout: no thaw", func(e *env) {
			e.host.Override = freezeOverride(fakehost.Fail(contract.ExitLockWait, "FLUSH TABLES WITH READ LOCK: lock wait timeout 5s"))
		}, baseEvent, nil, failedWith("MySQL lock not acquired", 0, 0)},
		{"mount without an EBS volume: nothing snapshotted, thaw sent", func(e *env) {
			delete(e.host.Volumes[inst], "/var/lib/mysql-binlog")
		}, baseEvent, nil, failedWith("no EBS volume ID", 1, 0)},
		{"CreateSnapshots unusable, CreateSnapshot fails midway: partial set tagged crash+incomplete", func(e *env) {
			e.srv.SetFault("CreateSnapshots", awslocal.Fault{Code: "UnauthorizedOperation"})
			e.srv.SetFault("CreateSnapshot", awslocal.Fault{Code: "IncorrectState", Match: func(c awslocal.Call) bool { return c.Form.Get("VolumeId") == vol(logsVol, inst) }})
		}, baseEvent, nil, func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
			failedWith("snapshot failed", 1, 1)(t, e, res, err, r)
			s := e.srv.Snapshots()[0]
			if s.Tags["quiesce:consistency"] != "crash" || s.Tags["quiesce:incomplete"] != "true" || s.VolumeID != vol(dataVol, inst) {
				t.Fatalf("partial snapshot tags = %v", s.Tags)
			}
			if r.Consistency != orchestrate.Crash || len(r.Snapshots) != 1 || !r.Snapshots[0].Incomplete {
				t.Fatalf("result = %+v", r)
			}
		}},
		{"CreateSnapshots fails midway (first volume snapshotted, then 500): retried, the stray snapshot tagged crash+incomplete", func(e *env) {
			var failed atomic.Bool
			e.srv.OnSnapshot = func(_ context.Context, _, volumeID, _ string) error {
				if volumeID == vol(logsVol, inst) && failed.CompareAndSwap(false, true) {
					return errors.New("EBS hiccup")
				}
				return nil
			}
		}, baseEvent, nil, func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
			okApp(t, e, res, err, r)
			n := e.countSnapshots(isApplication, func(s awslocal.Snapshot) bool {
				return s.Tags["quiesce:incomplete"] == "true" && s.VolumeID == vol(dataVol, inst)
			})
			app, stray := n[0], n[1]
			if app != 2 || stray != 1 || len(e.srv.CallsOf("CreateSnapshots")) != 2 {
				t.Fatalf("application=%d stray=%d calls=%d", app, stray, len(e.srv.CallsOf("CreateSnapshots")))
			}
		}},
		{"CreateSnapshots unusable: per-volume fallback succeeds with full tags at creation", func(e *env) {
			e.srv.SetFault("CreateSnapshots", awslocal.Fault{Code: "UnsupportedOperation"})
		}, baseEvent, nil, func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
			okApp(t, e, res, err, r)
			if r.SnapshotAPI != orchestrate.APICreateSnapshot || len(e.srv.CallsOf("CreateSnapshot")) != 2 || len(e.srv.CallsOf("CreateTags")) != 0 {
				t.Fatalf("api=%s CreateSnapshot=%d CreateTags=%d", r.SnapshotAPI, len(e.srv.CallsOf("CreateSnapshot")), len(e.srv.CallsOf("CreateTags")))
			}
			for _, c := range e.srv.CallsOf("CreateSnapshot") {
				if c.Tags()["quiesce:device"] == "" || c.Tags()["quiesce:consistency"] != "application" {
					t.Fatalf("creation tags = %v", c.Tags())
				}
			}
		}},
		{"SnapshotCreationPerVolumeRateExceeded once: backs off and succeeds", func(e *env) {
			e.srv.SetFault("CreateSnapshots", awslocal.Fault{Code: "SnapshotCreationPerVolumeRateExceeded", Times: 1})
		}, baseEvent, nil, okApp},
		{"SnapshotCreationPerVolumeRateExceeded until the freeze deadline: gives up in time, thaws", func(e *env) {
			e.srv.SetFault("CreateSnapshots", awslocal.Fault{Code: "SnapshotCreationPerVolumeRateExceeded"})
		}, strings.Replace(baseEvent, `"5s"`, `"3s"`, 1), nil, func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
			failedWith("snapshot failed", 1, 0)(t, e, res, err, r)
			w := e.host.Windows()[0]
			if w.ThawedBy != contract.ThawedByCommand || w.ThawedAt.Sub(w.FrozenAt) > 3*time.Second {
				t.Fatalf("window %v by %s: retries ran past the freeze deadline", w.ThawedAt.Sub(w.FrozenAt), w.ThawedBy)
			}
		}},
		// The invocation's time runs out while CreateSnapshots is in flight:
		// the call is abandoned at thawBy (deadline - ThawReserve), thaw is
		// sent, and EC2 — which still processes the request, 2 s after it
		// arrived — creates the snapshots after the thaw; the late sweep
		// in the reserve finds them and tags them crash.
		{"context deadline arrives mid-cycle: thaw still sent, snapshot tagged crash", func(e *env) {
			e.srv.SetLatency("CreateSnapshots", 2000*time.Millisecond)
			e.runner.ThawReserve = 2 * time.Second
			e.runner.MinStartBudget = time.Second
		}, baseEvent, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 4000*time.Millisecond)
		},
			func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
				failedWith("snapshot failed", 1, 2)(t, e, res, err, r)
				if len(r.Snapshots) != 2 || r.Consistency != orchestrate.Crash {
					t.Fatalf("late snapshots not in the result: %+v", r)
				}
				for _, s := range e.srv.Snapshots() {
					if s.Tags["quiesce:consistency"] != "crash" || s.Tags["quiesce:incomplete"] != "true" {
						t.Fatalf("snapshot of a cut call: tags %v", s.Tags)
					}
				}
			}},
		{"thaw reports late after in-time snapshot calls: consistency stands, late reported", thawReportsLate, baseEvent, nil, func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
			// docs/architecture.md#consistency: hostagent's deadline started after the freeze was
			// sent, so calls that returned within freeze_timeout of sending
			// it were inside the hold; the deadline thaw came after them.
			if err != nil || r.Status != orchestrate.StatusOK || r.Consistency != orchestrate.Application || !r.ThawLate || !r.ThawedByDeadline {
				t.Fatalf("err=%v result=%+v", err, r)
			}
			if !strings.Contains(strings.Join(r.Errors, "; "), "after hostagent's deadline") {
				t.Fatalf("late thaw not reported: %v", r.Errors)
			}
			for _, s := range e.srv.Snapshots() {
				if s.Tags["quiesce:consistency"] != "application" {
					t.Fatalf("snapshot tags after a late thaw of an in-time snapshot = %v", s.Tags)
				}
			}
			if !contains(e.emf.String(), `"thawed_by_deadline":1`) {
				t.Fatalf("EMF: %s", e.emf.String())
			}
		}},
		{"thaw reports late and the snapshot call outlived freeze_timeout: crash, never application", func(e *env) {
			e.srv.SetLatency("CreateSnapshots", 3500*time.Millisecond)
			thawReportsLate(e)
		}, strings.Replace(baseEvent, `"5s"`, `"3s"`, 1), nil, func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
			var re *orchestrate.RunError
			if !errors.As(err, &re) || r.Status != orchestrate.StatusFailed || r.Consistency != orchestrate.Crash || !r.ThawLate {
				t.Fatalf("err=%v result=%+v", err, r)
			}
			for _, m := range r.Errors {
				if strings.Contains(m, "consistency stands") {
					t.Fatalf("result claims consistency stands for a crash-only instance: %q", m)
				}
			}
			if len(e.srv.Snapshots()) == 0 {
				t.Fatalf("no snapshot was created")
			}
			for _, s := range e.srv.Snapshots() {
				// The Lambda stops waiting at the freeze deadline, so the call's
				// snapshot is an unacknowledged one: crash and incomplete.
				if s.Tags["quiesce:consistency"] != "crash" || s.Tags["quiesce:incomplete"] != "true" {
					t.Fatalf("snapshot tags = %v", s.Tags)
				}
			}
		}},
		{"freeze completes after the Lambda gave up and thawed: thawed again", func(e *env) {
			e.host.Override = func(inv awslocal.Invocation) (awslocal.CommandResult, bool) {
				if inv.Param("action") == "freeze" {
					time.Sleep(2500 * time.Millisecond) // e.g. waiting for the MySQL lock
					return e.host.Default(inv), true
				}
				return awslocal.CommandResult{}, false
			}
		}, strings.Replace(baseEvent, `"5s"`, `"2s"`, 1), nil, func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
			failedWith("freeze outcome unknown", 2, 0)(t, e, res, err, r)
			w := e.host.Windows()
			if len(w) != 1 || w[0].ThawedBy != contract.ThawedByCommand {
				t.Fatalf("late freeze was not thawed by our command: %+v", w)
			}
		}},
		{"thaw command fails: instance failed, snapshots crash", func(e *env) {
			e.host.Override = func(inv awslocal.Invocation) (awslocal.CommandResult, bool) {
				if inv.Param("action") == "thaw" {
					return fakehost.Fail(contract.ExitFailed, "thaw: state dir unreadable"), true
				}
				return awslocal.CommandResult{}, false
			}
		}, baseEvent, nil, func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
			if r.Status != orchestrate.StatusFailed || r.Consistency != orchestrate.Crash || !strings.Contains(r.Reason, "thaw not confirmed") {
				t.Fatalf("result = %+v", r)
			}
		}},
		{"thaw reports the MySQL lock lost during the hold: crash, reason in the note, tag and result", func(e *env) {
			e.host.Override = func(inv awslocal.Invocation) (awslocal.CommandResult, bool) {
				if inv.Param("action") == "thaw" {
					return thawLockLost(e.host.Default(inv), "connection killed (KILL 42)"), true
				}
				return awslocal.CommandResult{}, false
			}
		}, baseEvent, nil, func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
			var re *orchestrate.RunError
			if !errors.As(err, &re) || r.Status != orchestrate.StatusFailed || r.Consistency != orchestrate.Crash || thawCount(e, inst) != 1 {
				t.Fatalf("err=%v result=%+v", err, r)
			}
			if !strings.Contains(r.ConsistencyNote, "MySQL lock lost") || !strings.Contains(r.ConsistencyNote, "KILL 42") ||
				r.LockLost == nil || r.LockLost.Reason != "connection killed (KILL 42)" || !strings.Contains(re.Error(), `"lock_lost":{`) {
				t.Fatalf("lock loss not in the result: note %q lock_lost %+v", r.ConsistencyNote, r.LockLost)
			}
			if len(e.srv.Snapshots()) != 2 {
				t.Fatalf("snapshots = %d", len(e.srv.Snapshots()))
			}
			for _, s := range e.srv.Snapshots() {
				if s.Tags["quiesce:consistency"] != "crash" || !strings.Contains(s.Tags["quiesce:note"], "KILL 42") {
					t.Fatalf("snapshot tags after a lost lock = %v", s.Tags)
				}
			}
		}},
		{"explicit lock requested but hostagent took none: crash at creation", func(e *env) {
			e.host.AutoLock = contract.LockNone
			e.host.Override = func(inv awslocal.Invocation) (awslocal.CommandResult, bool) {
				if inv.Param("action") == "freeze" {
					inv.Parameters["mysqlLock"] = []string{"auto"}
				}
				return awslocal.CommandResult{}, false
			}
		}, strings.Replace(baseEvent, `"freeze_timeout"`, `"mysql":{"lock":"ftwrl"},"freeze_timeout"`, 1), nil,
			func(t *testing.T, e *env, res *orchestrate.Result, err error, r orchestrate.InstanceResult) {
				if r.Status != orchestrate.StatusFailed || r.Consistency != orchestrate.Crash {
					t.Fatalf("result = %+v", r)
				}
				if c := e.srv.CallsOf("CreateSnapshots"); len(c) != 1 || c[0].Tags()["quiesce:consistency"] != "crash" {
					t.Fatalf("creation tags should already say crash")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			tt.setup(e)
			ctx := context.Background()
			if tt.ctx != nil {
				var cancel context.CancelFunc
				ctx, cancel = tt.ctx()
				defer cancel()
			}
			res, err := e.run(ctx, tt.ev)
			if res == nil {
				t.Fatalf("no result: %v", err)
			}
			r := instResult(t, res, inst)
			tt.check(t, e, res, err, r)
			e.assertHonest(res)
			if t.Failed() {
				t.Logf("logs:\n%s", e.logs.String())
			}
		})
	}
}

// thawReportsLate makes every thaw answer as hostagent does after its
// deadline fired (fakehostLate).
func thawReportsLate(e *env) {
	e.host.Override = func(inv awslocal.Invocation) (awslocal.CommandResult, bool) {
		if inv.Param("action") == "thaw" {
			return fakehostLate(inv), true
		}
		return awslocal.CommandResult{}, false
	}
}

// fakehostLate answers thaw as hostagent does after its deadline fired.
func fakehostLate(inv awslocal.Invocation) awslocal.CommandResult {
	tr := contract.ThawReport{RunID: inv.Param("runId"), ThawedBy: contract.ThawedByDeadline, Late: true, MySQLUnlocked: true, ThawedAt: time.Now(), HeldMS: 30000,
		Mounts: []contract.MountThaw{{Path: "/var/lib/mysql", Thawed: true}}}
	return jsonCmd(contract.ExitLate, tr)
}

// thawLockLost rewrites hostagent's ThawReport as it reads when the MySQL
// lock's connection died during the hold.
func thawLockLost(res awslocal.CommandResult, reason string) awslocal.CommandResult {
	var tr contract.ThawReport
	if err := json.Unmarshal([]byte(res.Stdout), &tr); err != nil {
		panic(err)
	}
	tr.LockLost = &contract.LockLoss{At: tr.ThawedAt.Add(-time.Second), AfterMS: 640, Reason: reason}
	return jsonCmd(contract.ExitCode(res.ResponseCode), tr)
}
