// Package fakehost is a scripted stand-in for hostagent behind the SSM
// document, for awslocal.Server.RunCommand in the snapshot run's wire tests,
// benchmarks and RIE smoke test (the verify and clone wire tests script
// theirs with lambdaenv.Host). It speaks the same contract (parameters,
// FreezeReport/ThawReport/CheckReport/ErrorReport JSON, exit codes), holds
// a per-instance "freeze" with a deadline that is enforced lazily (a thaw
// after the deadline reports thawed_by=deadline, late=true, exit 4), and
// records every window for assertions.
package fakehost

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/awslocal"
)

// Clock is the time source (awslocal.Clock and lambda clocks satisfy it).
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Window is one freeze as the host saw it.
type Window struct {
	InstanceID string
	RunID      string
	FrozenAt   time.Time
	ThawedAt   time.Time // zero while held
	ThawedBy   string
}

// Call is one command the host ran.
type Call struct {
	InstanceID string
	Action     string
	RunID      string
	At         time.Time
	Params     map[string][]string
}

type hold struct {
	runID    string
	mounts   []string
	frozenAt time.Time
	deadline time.Time
	window   int
}

// Host is safe for concurrent use. Set fields before use.
type Host struct {
	Clock Clock
	// Volumes maps instance → mount path → volume IDs. A mount without an
	// entry reports no volume IDs.
	Volumes map[string]map[string][]string
	// AutoLock is the lock mode "auto" resolves to (default ftwrl).
	AutoLock string
	// Override, when it returns handled=true, replaces the default
	// behaviour for that invocation (fault scripting).
	Override func(inv awslocal.Invocation) (res awslocal.CommandResult, handled bool)

	mu      sync.Mutex
	held    map[string]*hold
	windows []Window
	calls   []Call
}

// New returns a host on the wall clock.
func New() *Host { return &Host{Clock: realClock{}} }

func (h *Host) now() time.Time {
	if h.Clock == nil {
		return time.Now()
	}
	return h.Clock.Now()
}

// Windows returns the recorded freezes.
func (h *Host) Windows() []Window {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Window(nil), h.windows...)
}

// Calls returns the recorded commands.
func (h *Host) Calls() []Call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Call(nil), h.calls...)
}

// Actions returns the actions run on one instance, in order.
func (h *Host) Actions(instanceID string) []string {
	var out []string
	for _, c := range h.Calls() {
		if c.InstanceID == instanceID {
			out = append(out, c.Action)
		}
	}
	return out
}

// Held reports whether an instance is frozen right now (deadline applied).
func (h *Host) Held(instanceID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	hd := h.held[instanceID]
	return hd != nil && h.now().Before(hd.deadline)
}

// Run implements awslocal.Server.RunCommand.
func (h *Host) Run(_ context.Context, inv awslocal.Invocation) awslocal.CommandResult {
	now := h.now()
	h.mu.Lock()
	h.calls = append(h.calls, Call{InstanceID: inv.InstanceID, Action: inv.Param("action"), RunID: inv.Param("runId"), At: now, Params: inv.Parameters})
	h.mu.Unlock()
	if h.Override != nil {
		if res, ok := h.Override(inv); ok {
			return res
		}
	}
	return h.Default(inv)
}

// Default runs the scripted hostagent behaviour (for use inside Override,
// e.g. after a delay).
func (h *Host) Default(inv awslocal.Invocation) awslocal.CommandResult {
	now := h.now()
	switch inv.Param("action") {
	case "freeze":
		return h.freeze(inv, now)
	case "thaw":
		return h.thaw(inv, now)
	case "check":
		return h.check(inv)
	case "status":
		return jsonResult(0, contract.StatusReport{})
	}
	return Fail(contract.ExitUsage, "unknown action "+inv.Param("action"))
}

// Fail returns a failed command with an ErrorReport, like hostagent.
func Fail(code contract.ExitCode, msg string) awslocal.CommandResult {
	r := jsonResult(code, contract.ErrorReport{Error: msg, ExitCode: code})
	r.Stderr = "hostagent: " + msg + "\n"
	return r
}

func jsonResult(code contract.ExitCode, v any) awslocal.CommandResult {
	b, _ := json.Marshal(v)
	st := "Success"
	if code != 0 {
		st = "Failed"
	}
	return awslocal.CommandResult{Status: st, ResponseCode: int(code), Stdout: string(b) + "\n"}
}

func (h *Host) mountReports(instanceID string, mounts []string) []contract.MountReport {
	var out []contract.MountReport
	for i, m := range mounts {
		vols := h.Volumes[instanceID][m]
		out = append(out, contract.MountReport{Path: m, FSType: "xfs", Device: fmt.Sprintf("/dev/nvme%dn1", i+1), VolumeIDs: append([]string{}, vols...), FreezeMS: 2})
	}
	return out
}

func (h *Host) freeze(inv awslocal.Invocation, now time.Time) awslocal.CommandResult {
	mounts := contract.SplitList(inv.Param("mounts"))
	if len(mounts) == 0 {
		return Fail(contract.ExitUsage, "freeze: at least one --mount is required")
	}
	timeout, err := time.ParseDuration(inv.Param("timeout"))
	if err != nil || timeout < time.Second {
		return Fail(contract.ExitUsage, fmt.Sprintf("--timeout %q: invalid", inv.Param("timeout")))
	}
	runID := inv.Param("runId")
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held == nil {
		h.held = map[string]*hold{}
	}
	if hd := h.held[inv.InstanceID]; hd != nil && now.Before(hd.deadline) {
		return Fail(contract.ExitBusy, fmt.Sprintf("mount %s is held by run %s", hd.mounts[0], hd.runID))
	}
	lock := inv.Param("mysqlLock")
	mode := lock
	if lock == "" || lock == contract.LockAuto {
		mode = h.AutoLock
		if mode == "" {
			mode = contract.LockFTWRL
		}
	}
	li := contract.LockInfo{Mode: mode, Requested: lock, AcquiredMS: 1.5}
	if mode != contract.LockNone {
		li.BinlogFile, li.BinlogPos, li.GTIDExecuted, li.ServerVersion = "mysql-bin.000042", 4711, "0-1-1234", "10.11.6-MariaDB"
	}
	h.windows = append(h.windows, Window{InstanceID: inv.InstanceID, RunID: runID, FrozenAt: now})
	h.held[inv.InstanceID] = &hold{runID: runID, mounts: mounts, frozenAt: now, deadline: now.Add(timeout), window: len(h.windows) - 1}
	return jsonResult(0, contract.FreezeReport{RunID: runID, Hostname: "db-" + inv.InstanceID, InstanceID: inv.InstanceID, StartedAt: now, FrozenAt: now,
		Deadline: now.Add(timeout), TimeoutMS: timeout.Milliseconds(), Lock: li, Mounts: h.mountReports(inv.InstanceID, mounts), HolderPID: 4242, GuardianPID: 4243, HeldMS: 3})
}

func (h *Host) thaw(inv awslocal.Invocation, now time.Time) awslocal.CommandResult {
	runID := inv.Param("runId")
	h.mu.Lock()
	defer h.mu.Unlock()
	hd := h.held[inv.InstanceID]
	if hd == nil || (runID != "" && hd.runID != runID) {
		// Idempotent: nothing of this run is held.
		return jsonResult(0, contract.ThawReport{RunID: runID, ThawedBy: contract.ThawedByCommand, MySQLUnlocked: true, ThawedAt: now})
	}
	delete(h.held, inv.InstanceID)
	tr := contract.ThawReport{RunID: runID, ThawedBy: contract.ThawedByCommand, MySQLUnlocked: true, ThawedAt: now}
	for _, m := range hd.mounts {
		tr.Mounts = append(tr.Mounts, contract.MountThaw{Path: m, Thawed: true})
	}
	code := contract.ExitOK
	end := now
	if !now.Before(hd.deadline) {
		tr.ThawedBy, tr.Late, tr.ThawedAt = contract.ThawedByDeadline, true, hd.deadline
		end = hd.deadline
		code = contract.ExitLate
	}
	tr.HeldMS = float64(end.Sub(hd.frozenAt).Microseconds()) / 1000
	h.windows[hd.window].ThawedAt = end
	h.windows[hd.window].ThawedBy = tr.ThawedBy
	return jsonResult(code, tr)
}

func (h *Host) check(inv awslocal.Invocation) awslocal.CommandResult {
	mounts := contract.SplitList(inv.Param("mounts"))
	cr := contract.CheckReport{OK: len(mounts) > 0, Mounts: h.mountReports(inv.InstanceID, mounts), Lock: contract.LockInfo{Mode: inv.Param("mysqlLock")}}
	for _, m := range cr.Mounts {
		if len(m.VolumeIDs) == 0 {
			cr.OK = false
			cr.Problems = append(cr.Problems, "mount "+m.Path+": no EBS volume ID")
		}
	}
	if !cr.OK {
		return jsonResult(contract.ExitFailed, cr)
	}
	return jsonResult(0, cr)
}
