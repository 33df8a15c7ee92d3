package hold

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/state"
	"github.com/quiesce/quiesce/internal/agenterr"
)

// Thaw ends a run: through the holder's socket when it lives, else from the
// state file. Idempotent: a finished run's report is returned again. A thaw
// that comes after the fail-safe acted returns the report AND an
// contract.ErrLate-wrapping error.
func (a *Agent) Thaw(ctx context.Context, runID string) (*contract.ThawReport, error) {
	run, err := a.Dir.Read(runID)
	if err != nil {
		// Record (and copy) unreadable or gone: a live holder is still
		// reachable, its socket path derives from the run id alone.
		if rep, herr := a.askHolder(ctx, runID, holderAnswerWait); herr == nil {
			a.log().Warn("state unreadable; thawed through the holder's socket", "run", runID, "err", err)
			return lateCheck(rep)
		}
	}
	if errors.Is(err, state.ErrNotFound) {
		return nil, agenterr.Usagef("--run-id %q: no such run in %s", runID, a.Dir.Path)
	}
	if err != nil {
		return nil, err
	}
	// Right after the go-ahead the holder runs but has not recorded itself yet
	// (milliseconds): wait for it rather than thawing behind its back.
	if run, err = a.awaitHolderRecord(run); err != nil {
		return nil, err
	}
	if run.Active() && run.Holder.Alive() {
		rep, err := a.askHolder(ctx, runID, askWait(run))
		if err == nil {
			return lateCheck(rep)
		}
		a.log().Warn("holder did not answer; thawing from the state file", "run", runID, "err", err)
	}
	// The lock keeps state updates consistent, but thawing is always safe: a
	// process stuck while holding the lock (a stopped holder in the middle of
	// recording its own thaw, say) must not keep this thaw from happening.
	if unlock, err := a.Dir.Lock(dirLockWait); err == nil {
		defer unlock()
	} else {
		a.log().Warn("state dir lock unavailable; thawing without it", "run", runID, "err", err)
	}
	if run, err = a.Dir.Read(runID); err != nil {
		return nil, err
	}
	switch run.Status {
	case state.StatusFailed:
		// Nothing was held; answer so callers that always thaw get a report.
		return &contract.ThawReport{RunID: runID, ThawedBy: contract.ThawedByCommand, Mounts: []contract.MountThaw{},
			MySQLUnlocked: true, ThawedAt: time.Now().UTC()}, nil
	case state.StatusThawed:
		if run.Thaw == nil {
			return nil, fmt.Errorf("run %s: thawed but no report recorded", runID)
		}
		a.retryFailedThaws(run)
		a.retryAppliers(ctx, run)
		return lateCheck(run.Thaw)
	}
	return a.thawFromState(run)
}

// thawFromState ends an active run whose holder is gone or mute, from its
// record: filesystems first, then the holder (its connection closing
// releases the MySQL lock). Runs under the state lock where it could be had.
func (a *Agent) thawFromState(run *state.Run) (*contract.ThawReport, error) {
	runID := run.RunID
	mounts, terr := a.thawRun(run)
	holderDead := true
	if run.Holder.Alive() {
		_ = killProc(run.Holder)
		holderDead = waitExit(run.Holder, killWait)
	}
	a.restoreRCU(run)
	run.RCURestore = false
	appliersRunning := len(pendingThaws(mounts)) == 0 && a.restartAppliers(context.Background(), run)
	now := time.Now()
	rep := contract.ThawReport{RunID: runID, ThawedBy: contract.ThawedByRecovery, HeldMS: heldMS(run, now), Mounts: mounts,
		MySQLUnlocked: (holderDead || run.LockMode == contract.LockNone) && appliersRunning, ThawedAt: now.UTC(), LockLost: run.LockLost}
	if lateThaw(run) {
		rep.ThawedBy, rep.Late = contract.ThawedByDeadline, true
	}
	settle(run, rep)
	if err := a.Dir.Write(run); err != nil {
		return &rep, err
	}
	os.Remove(a.Dir.SocketPath(runID))
	if terr != nil {
		a.log().Error("thaw", "run", runID, "err", terr)
	}
	return lateCheck(&rep)
}

// awaitHolderRecord waits (at most holderRecordWait) while a run's client
// lives and its holder has not recorded itself yet.
func (a *Agent) awaitHolderRecord(run *state.Run) (*state.Run, error) {
	var err error
	for wait := time.Now().Add(holderRecordWait); run.Status == state.StatusStarting && run.Holder.PID == 0 &&
		run.Client.Alive() && time.Now().Before(wait); {
		time.Sleep(10 * time.Millisecond)
		if run, err = a.Dir.Read(run.RunID); err != nil {
			return nil, err
		}
	}
	return run, nil
}

// retryFailedThaws tries again the mounts whose thaw failed (a repeated thaw
// command is how an operator retries) and records the outcome. It runs under
// the state lock and leaves alone a mount that a newer run holds now: once
// this run was finished, its mounts could be reserved and frozen again.
func (a *Agent) retryFailedThaws(run *state.Run) {
	active, _ := a.Dir.Active()
	heldBy := func(m state.Mount) string {
		for _, r := range active {
			for _, h := range r.Mounts {
				if h.Path == m.Path || (m.Dev != 0 && h.Dev == m.Dev) {
					return r.RunID
				}
			}
		}
		return ""
	}
	retried := false
	for i, m := range run.Thaw.Mounts {
		if m.Thawed {
			continue
		}
		mount := state.Mount{Path: m.Path}
		for _, rm := range run.Mounts {
			if rm.Path == m.Path {
				mount = rm
			}
		}
		if id := heldBy(mount); id != "" {
			if !strings.Contains(m.Error, "held by run") {
				run.Thaw.Mounts[i].Error = m.Error + fmt.Sprintf(" (not retried: held by run %s now)", id)
			}
			continue
		}
		retried = true
		if _, err := a.thawFS(mount); err != nil {
			run.Thaw.Mounts[i].Error = err.Error()
		} else {
			run.Thaw.Mounts[i] = contract.MountThaw{Path: m.Path, Thawed: true}
		}
	}
	if retried {
		if err := a.Dir.Write(run); err != nil {
			a.log().Error("state write", "run", run.RunID, "err", err)
		}
	}
}

// retryAppliers: a finished run that still records stopped replica appliers
// (their restart failed, e.g. the server was down) gets another try on every
// repeated thaw, like a mount whose thaw failed.
func (a *Agent) retryAppliers(ctx context.Context, run *state.Run) {
	if len(run.ReplicaAppliers) == 0 {
		return
	}
	if a.restartAppliers(ctx, run) {
		run.Thaw.MySQLUnlocked = true
		if err := a.Dir.Write(run); err != nil {
			a.log().Error("state write", "run", run.RunID, "err", err)
		}
	}
}

// lateCheck turns a thaw report into the command's outcome: a mount that did
// not thaw is a failure (exit 1, report still printed), a thaw after the
// fail-safe acted is ErrLate (exit 4).
func lateCheck(rep *contract.ThawReport) (*contract.ThawReport, error) {
	for _, m := range rep.Mounts {
		if !m.Thawed {
			return rep, fmt.Errorf("run %s: thaw %s failed: %s", rep.RunID, m.Path, m.Error)
		}
	}
	if rep.Late {
		return rep, fmt.Errorf("run %s was already thawed by %s at %s, before this thaw: %w",
			rep.RunID, rep.ThawedBy, rep.ThawedAt.Format(time.RFC3339Nano), contract.ErrLate)
	}
	return rep, nil
}

// askHolder sends thaw on the run's holder socket and waits at most wait
// for its report.
func (a *Agent) askHolder(ctx context.Context, runID string, wait time.Duration) (*contract.ThawReport, error) {
	d := net.Dialer{Timeout: holderDialWait}
	c, err := d.DialContext(ctx, "unix", a.Dir.SocketPath(runID))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if err := json.NewEncoder(c).Encode(socketRequest{Op: "thaw"}); err != nil {
		return nil, err
	}
	var rep contract.ThawReport
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		return nil, fmt.Errorf("%w: %v", errHolderGone, err)
	}
	if rep.RunID != runID {
		return nil, fmt.Errorf("holder answered for run %q", rep.RunID)
	}
	return &rep, nil
}

// Recover thaws every active run that nobody is left to thaw: all its
// processes are dead, or it is overdue (still active well past its deadline:
// wedged). only restricts it to one run (the systemd timer's `recover`).
// Finished runs older than a day are pruned. It returns the recovered run ids.
func (a *Agent) Recover(ctx context.Context, only string) ([]string, error) {
	unlock, err := a.Dir.Lock(recoverLockWait)
	if err != nil {
		return nil, err
	}
	defer unlock()
	runs, listErr := a.Dir.Active()
	var recovered []string
	var errs []error
	for _, run := range runs {
		if (only != "" && run.RunID != only) || !run.Active() {
			continue
		}
		alive := run.Client.Alive() || run.Holder.Alive() || run.Guardian.Alive()
		overdue := overdue(run)
		// A thaw that did not return is retried by whoever comes next: a
		// FITHAW of the run's own mounts is always safe.
		if alive && !overdue && len(run.ThawPending) == 0 {
			continue
		}
		a.log().Warn("recovering stale run", "run", run.RunID, "status", run.Status, "overdue", overdue,
			"client", run.Client, "holder", run.Holder, "guardian", run.Guardian)
		mounts, terr := a.thawRun(run)
		if terr != nil {
			errs = append(errs, terr)
		}
		holderDead := true
		if run.Holder.Alive() {
			_ = killProc(run.Holder)
			holderDead = waitExit(run.Holder, killWait)
		}
		_ = killProc(run.Guardian)
		a.restoreRCU(run)
		run.RCURestore = false
		appliersRunning := len(pendingThaws(mounts)) == 0 && a.restartAppliers(ctx, run)
		now := time.Now()
		rep := contract.ThawReport{RunID: run.RunID, ThawedBy: contract.ThawedByRecovery, HeldMS: heldMS(run, now),
			Mounts: mounts, MySQLUnlocked: (holderDead || run.LockMode == contract.LockNone) && appliersRunning, Late: true, ThawedAt: now.UTC(),
			LockLost: run.LockLost}
		settle(run, rep)
		if err := a.Dir.Write(run); err != nil {
			errs = append(errs, err)
		}
		os.Remove(a.Dir.SocketPath(run.RunID))
		recovered = append(recovered, run.RunID)
	}
	if only == "" {
		a.Dir.Prune(time.Now().Add(-keepFinished))
	}
	if listErr != nil {
		a.log().Warn("unreadable state files", "err", listErr)
	}
	return recovered, errors.Join(errs...)
}

// Status describes the runs in the state dir (one run with only != "").
func (a *Agent) Status(only string) (*contract.StatusReport, error) {
	var runs []*state.Run
	if only != "" {
		run, err := a.Dir.Read(only)
		if errors.Is(err, state.ErrNotFound) {
			return nil, agenterr.Usagef("--run-id %q: no such run in %s", only, a.Dir.Path)
		}
		if err != nil {
			return nil, err
		}
		runs = append(runs, run)
	} else {
		var err error
		if runs, err = a.Dir.List(); err != nil {
			a.log().Warn("unreadable state files", "err", err)
		}
	}
	out := &contract.StatusReport{Runs: []contract.RunStatus{}}
	for _, r := range runs {
		rs := contract.RunStatus{RunID: r.RunID, State: r.Status, LockMode: r.LockMode, FrozenAt: r.FrozenAt,
			Deadline: r.Deadline, HolderPID: r.Holder.PID, GuardianPID: r.Guardian.PID,
			HolderAlive: r.Holder.Alive(), GuardAlive: r.Guardian.Alive()}
		for _, m := range r.Mounts {
			rs.Mounts = append(rs.Mounts, m.Path)
		}
		rs.LockLost, rs.ThawPending = r.LockLost, r.ThawPending
		if r.Thaw != nil {
			rs.ThawedBy = r.Thaw.ThawedBy
			if r.Thaw.LockLost != nil {
				rs.LockLost = r.Thaw.LockLost
			}
		}
		out.Runs = append(out.Runs, rs)
	}
	return out, nil
}

// Fail-safe layer names (contract.FreezeReport.FailsafeLayers), in the order
// they act: the guardian at the deadline, the systemd timer one second
// later, any later hostagent invocation whenever it comes. Without systemd,
// a host whose holder and guardian are both killed has nothing time-based
// left until someone runs hostagent again.
const (
	LayerGuardian       = "guardian"
	LayerSystemdTimer   = "systemd-timer"
	LayerNextInvocation = "next-invocation"
)

// FailsafeLayers lists the layers of a hold: the guardian if it was started,
// the systemd timer if it was armed, and the next invocation (always).
func FailsafeLayers(guardian, timer bool) []string {
	var layers []string
	if guardian {
		layers = append(layers, LayerGuardian)
	}
	if timer {
		layers = append(layers, LayerSystemdTimer)
	}
	return append(layers, LayerNextInvocation)
}

// SystemdTimerAvailable reports whether a freeze here could arm the systemd
// timer: systemd is PID 1 and systemd-run is installed.
func SystemdTimerAvailable() bool { return systemdTimerAvailable(systemdMarker) }

func systemdTimerAvailable(marker string) bool {
	if _, err := os.Stat(marker); err != nil {
		return false
	}
	_, err := exec.LookPath("systemd-run")
	return err == nil
}

// systemdMarker exists where systemd is PID 1 (sd_booted(3)).
const systemdMarker = "/run/systemd/system"

// SystemdTimer returns the third fail-safe layer where systemd is PID 1: a
// transient timer that runs `hostagent recover --run-id X` systemdTimerDelay
// after the deadline (deadline.go). Elsewhere it returns nil (nothing to arm).
func SystemdTimer(exe, stateDir string) func(ctx context.Context, run *state.Run) (string, error) {
	return systemdTimer(exe, stateDir, systemdMarker)
}

// systemdTimer is SystemdTimer with the "systemd is PID 1" marker injectable.
func systemdTimer(exe, stateDir, marker string) func(ctx context.Context, run *state.Run) (string, error) {
	if _, err := os.Stat(marker); err != nil {
		return nil
	}
	return func(ctx context.Context, run *state.Run) (string, error) {
		unit := "quiesce-" + run.RunID
		ctx, cancel := context.WithTimeout(ctx, systemdRunWait)
		defer cancel()
		path, err := exec.LookPath("systemd-run")
		if err != nil {
			return "", err
		}
		real, err := filepath.EvalSymlinks(exe)
		if err != nil {
			return "", err
		}
		args := append([]string{"--quiet", "--collect", "--unit", unit}, systemdTimerArgs(run)...)
		args = append(args, real, CmdRecover, "--state-dir", stateDir, "--run-id", run.RunID)
		cmd := exec.CommandContext(ctx, path, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("systemd-run: %v: %s", err, out)
		}
		return unit + ".timer", nil
	}
}
