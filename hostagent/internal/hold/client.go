package hold

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/state"
	"github.com/quiesce/quiesce/internal/agenterr"
)

// Request is a validated freeze.
type Request struct {
	RunID      string
	Mounts     []state.Mount // sorted: the freeze order
	MySQL      state.MySQL   // after mysqllock.Resolve: auto becomes none when no MySQL is involved
	Requested  string        // the --mysql-lock value as given
	Timeout    time.Duration
	StartedAt  time.Time
	StartMono  int64
	InstanceID string
	// ExpediteRCU shortens FIFREEZE (see fsfreeze.RCUExpedited).
	ExpediteRCU bool
}

// holderMsg is the holder's one message on the report pipe.
type holderMsg struct {
	Freeze *contract.FreezeReport `json:"freeze,omitempty"`
	// Code is the exit code the error maps to; the client rebuilds an
	// error with the same sentinel from it (contract.ExitError).
	Code  contract.ExitCode `json:"code,omitempty"`
	Error string            `json:"error,omitempty"`
}

// PendingHolder is a started holder waiting for the go-ahead on its control pipe.
type PendingHolder struct {
	pid     int
	proc    *os.Process // our child: killing it through this handle never hits a reused pid
	exited  chan error  // its exit status (cmd.Wait), once it exited
	report  *os.File    // read end of the holder's report pipe
	control *os.File    // write end: one byte = go; EOF (close, or our exit) = exit quietly
}

// StartHolder starts the detached holder for runID before the run is
// reserved, so its exec and runtime start overlap the client's remaining
// work (recovery, volume discovery, reservation). It does nothing until Freeze
// lets it go; Abort (or this process exiting) makes it exit.
func (a *Agent) StartHolder(runID string) (*PendingHolder, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("report pipe: %w", err)
	}
	cr, cw, err := os.Pipe()
	if err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("control pipe: %w", err)
	}
	cmd := exec.Command(a.Exe, CmdHolder, "--state-dir", a.Dir.Path, "--run-id", runID)
	cmd.Dir = "/" // never keep a frozen mount busy as a working directory
	cmd.Env = detachedEnv()
	cmd.ExtraFiles = []*os.File{pw, cr} // fds 3 and 4; everything else is close-on-exec
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// Stdin/Stdout/Stderr nil: /dev/null, so SSM's pipes are not inherited.
	closeOnExecFrom(3)
	err = cmd.Start()
	pw.Close()
	cr.Close()
	if err != nil {
		pr.Close()
		cw.Close()
		return nil, fmt.Errorf("start holder: %w", err)
	}
	// Reap the holder if it dies while we still run (we exit right after
	// anyway); its exit status tells a holder that died from a silent one.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return &PendingHolder{pid: cmd.Process.Pid, proc: cmd.Process, report: pr, control: cw, exited: exited}, nil
}

// died says how the holder ended if it exited (its pipe closed because it
// died: the status follows within moments), or nil if it still runs.
func (h *PendingHolder) died() error {
	if h.exited == nil {
		return nil
	}
	select {
	case werr := <-h.exited:
		status := "exit status 0"
		if werr != nil {
			status = werr.Error()
		}
		return fmt.Errorf("holder (pid %d) died before reporting (%s); see its log in the state dir", h.pid, status)
	case <-time.After(holderExitWait):
		return nil
	}
}

// Abort makes a pending holder exit without doing anything.
func (h *PendingHolder) Abort() {
	if h != nil {
		h.control.Close()
		h.report.Close()
	}
}

// Freeze reserves the mounts, lets the holder go (starting one if h is nil)
// and returns its FreezeReport. On failure nothing is left frozen or locked.
func (a *Agent) Freeze(ctx context.Context, req Request, h *PendingHolder) (*contract.FreezeReport, error) {
	if h == nil {
		var err error
		if h, err = a.StartHolder(req.RunID); err != nil {
			return nil, err
		}
	}
	defer h.Abort()
	run, err := a.reserve(req)
	if err != nil {
		return nil, err
	}
	if _, err := h.control.Write([]byte{'g'}); err != nil {
		if died := h.died(); died != nil {
			return nil, a.failStart(run, died)
		}
		return nil, a.failStart(run, fmt.Errorf("holder (pid %d) exited before it could start: %w", h.pid, err))
	}
	h.control.Close()

	wait := reportWait(req.Timeout)
	_ = h.report.SetReadDeadline(time.Now().Add(wait))
	var msg holderMsg
	derr := json.NewDecoder(h.report).Decode(&msg)
	switch {
	case derr == nil && msg.Freeze != nil:
		if err := a.ConfirmHeld(ctx, msg.Freeze); err != nil {
			return nil, err
		}
		return msg.Freeze, nil
	case derr == nil && msg.Error != "":
		return nil, &contract.ExitError{Code: msg.Code, Message: msg.Error}
	}
	// No answer: the holder crashed or hangs. Make sure nothing stays held.
	why := fmt.Errorf("holder (pid %d) gave no report within %v: %v", h.pid, wait, derr)
	if errors.Is(derr, os.ErrDeadlineExceeded) {
		why = fmt.Errorf("holder (pid %d) gave no report within %v", h.pid, wait)
	} else if died := h.died(); died != nil {
		why = died
	}
	// Kill our child first: before the go-ahead was processed its pid is not in the state file.
	_ = h.proc.Kill()
	a.abandon(run.RunID, why)
	return nil, why
}

// ConfirmHeld is the last check before a FreezeReport is printed (Freeze
// makes it, and the command again right before its write): the hold
// must still be in force. A client paused (SIGSTOP, a starved machine)
// between the holder's report and its own answer would otherwise print a
// success for a run the deadline already ended, and a snapshot would be
// taken of thawed filesystems. The deadline is checked on the monotonic clock
// (immune to clock steps), then the run's record. A hold that ended is a
// plain failure (exit 1: nothing is held, as for every failed freeze; not 4,
// which answers a thaw, nor 3, which says another run holds the mounts); one
// whose deadline passed but that is not thawed yet is thawed here first, so
// that this holds too.
func (a *Agent) ConfirmHeld(ctx context.Context, rep *contract.FreezeReport) error {
	run, err := a.Dir.Read(rep.RunID)
	if err != nil {
		if time.Until(rep.Deadline) > 0 {
			return nil // the record is unreadable, the holder's word and the wall clock stand
		}
		return fmt.Errorf("run %s: deadline %s passed before the freeze report could be given; nothing is held",
			rep.RunID, rep.Deadline.Format(time.RFC3339Nano))
	}
	if run.Status != state.StatusHeld {
		by := ""
		if run.Thaw != nil {
			by = " by " + run.Thaw.ThawedBy
		}
		return fmt.Errorf("run %s was already %s%s when its freeze report arrived (this client was paused or starved past the deadline); nothing is held",
			rep.RunID, run.Status, by)
	}
	if !deadlineOf(run).Passed() {
		return nil
	}
	if _, err := a.Thaw(ctx, rep.RunID); err != nil {
		a.log().Warn("thaw of a run whose deadline passed before its report", "run", rep.RunID, "err", err)
	}
	return fmt.Errorf("run %s: deadline %s passed before the freeze report could be given (this client was paused or starved); thawed, nothing is held",
		rep.RunID, run.Deadline.Format(time.RFC3339Nano))
}

func detachedEnv() []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if v := os.Getenv(state.EnvDir); v != "" {
		env = append(env, state.EnvDir+"="+v)
	}
	return env
}

// reserve checks that no active run holds any of the mounts and writes the new
// run as "starting", all under the state dir lock so two freezes cannot both win.
func (a *Agent) reserve(req Request) (*state.Run, error) {
	unlock, err := a.Dir.Lock(dirLockWait)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if prev, err := a.Dir.Read(req.RunID); err == nil {
		if prev.Active() {
			return nil, fmt.Errorf("--run-id %q: already %s: %w", req.RunID, prev.Status, contract.ErrBusy)
		}
		if prev.Status == state.StatusThawed {
			return nil, agenterr.Usagef("--run-id %q: already used by a finished run; give a new one", req.RunID)
		}
	}
	runs, err := a.Dir.Active()
	if err != nil {
		a.log().Warn("unreadable state files", "err", err)
	}
	for _, r := range runs {
		for _, held := range r.Mounts {
			for _, m := range req.Mounts {
				if held.Path == m.Path || held.Dev == m.Dev {
					return nil, fmt.Errorf("--mount %q: held by %s: %w", m.Path, describe(r), contract.ErrBusy)
				}
			}
		}
	}
	run := &state.Run{
		RunID:         req.RunID,
		Status:        state.StatusStarting,
		Mounts:        req.Mounts,
		MySQL:         req.MySQL,
		LockMode:      req.MySQL.Mode,
		LockRequested: req.Requested,
		Timeout:       req.Timeout,
		StartedAt:     req.StartedAt,
		StartMono:     req.StartMono,
		InstanceID:    req.InstanceID,
		ExpediteRCU:   req.ExpediteRCU,
		Client:        state.Self(),
	}
	// Until the holder fixes the final deadline, an upper bound lets
	// recovery tell a wedged start from a live one.
	provisionalDeadline(req).record(run, false)
	if err := a.Dir.Write(run); err != nil {
		// Half written (the record without its copy, in a full dir): a
		// reservation nobody completes must not block the next run.
		a.Dir.Discard(run.RunID)
		return nil, err
	}
	return run, nil
}

// failStart marks a run that never got a holder as failed.
func (a *Agent) failStart(run *state.Run, err error) error {
	run.Status = state.StatusFailed
	run.Error = err.Error()
	_ = a.update(run)
	return err
}

// abandon undoes a run whose holder did not report: kill the holder, thaw what
// it may have frozen (its MySQL connection dies with it), stop the guardian.
// Only while the run is still active: if someone else finished it (the
// guardian at the deadline, recovery, a thaw — e.g. while this client was
// stopped past its wait), its mounts are not this client's any more and may
// already be frozen by a newer run. The decision and the thaw happen under
// the state lock, which a newer run needs to reserve them.
func (a *Agent) abandon(runID string, why error) {
	run, err := a.Dir.Read(runID)
	if err != nil {
		return
	}
	if run.Active() && run.Holder.PID != 0 {
		_ = killProc(run.Holder)
		waitExit(run.Holder, killWait)
	}
	unlock, lerr := a.Dir.Lock(dirLockWait)
	if lerr == nil {
		defer unlock()
	} else {
		a.log().Warn("state dir lock unavailable; undoing without it", "run", runID, "err", lerr)
	}
	if run, err = a.Dir.Read(runID); err != nil || !run.Active() {
		return
	}
	mounts, _ := a.thawRun(run) // bounded: a FITHAW that blocks is left pending
	a.restoreRCU(run)
	run.RCURestore = false
	if pending := pendingThaws(mounts); len(pending) > 0 {
		// Not "failed", which nothing retries: the run stays active with the
		// mounts to thaw, and the guardian (not stopped) and recovery retry.
		a.log().Error("thaw after abandoned holder did not return", "run", runID, "pending", pending)
		run.ThawPending = pending
		run.Error = why.Error() + "; thaw of " + strings.Join(pending, ", ") + " did not return, left to retry"
		_ = a.Dir.Write(run)
		return
	}
	_ = killProc(run.Guardian)
	a.restartAppliers(context.Background(), run)
	run.Status = state.StatusFailed
	run.Error = why.Error()
	_ = a.Dir.Write(run)
}
