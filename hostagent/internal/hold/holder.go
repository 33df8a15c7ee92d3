package hold

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/state"
)

// thawRequest is one `thaw` arriving on the holder's socket.
type thawRequest struct {
	reply   chan *contract.ThawReport
	written chan struct{}
}

// socketRequest is the wire request on the holder socket.
type socketRequest struct {
	Op string `json:"op"`
}

// Holder is the detached holder's main: wait for the client's go-ahead on
// control (fd 4; EOF means the client gave up: exit), start the guardian,
// lock, freeze, report on reportPipe (fd 3), then hold until thaw, deadline or
// SIGTERM. It never touches the frozen mounts after freezing them. Each phase
// is a method of holding; any failure after the socket is open undoes what
// was done (fail, undo) and reports it.
func (a *Agent) Holder(ctx context.Context, runID string, reportPipe, control *os.File) error {
	// Nothing this process holds (the report pipe included) may reach the guardian.
	closeOnExecFrom(3)
	if !awaitGoAhead(control) {
		reportPipe.Close()
		return nil // aborted before anything was done: nothing to undo or report
	}
	a.Log = openLog(a.Dir.LogPath(runID)).With("role", "holder", "run", runID)
	h := &holding{a: a, report: reportPipe, log: a.log()}
	defer h.send(holderMsg{Code: contract.ExitFailed, Error: "holder exited without a report"})
	if err := h.load(runID); err != nil {
		h.send(holderMsg{Code: contract.ExitFailed, Error: err.Error()})
		return err
	}
	if err := h.openSocket(); err != nil {
		return h.fail(err)
	}
	defer os.Remove(a.Dir.SocketPath(runID))
	defer h.ln.Close()
	if err := h.armGuardian(); err != nil {
		return h.fail(err)
	}
	h.armTimer(ctx)
	if err := h.lockMySQL(ctx); err != nil {
		return h.fail(err)
	}
	mounts, err := h.freeze()
	if err != nil {
		return h.undo(err)
	}
	if err := h.reportHeld(mounts); err != nil {
		return h.undo(err)
	}
	return a.serve(h.run, h.lock, h.ln, h.deadline)
}

// holding is one holder's progress through its phases.
type holding struct {
	a        *Agent
	log      *slog.Logger
	report   *os.File // the pipe to the client: one message
	reported bool
	run      *state.Run
	ln       *net.UnixListener
	deadline Deadline
	self     state.Proc
	guardian state.Proc
	timer    chan string // the systemd timer unit ("" if none)
	lock     Lock
	info     contract.LockInfo
	frozen   []state.Mount
	frozenAt time.Time
	frozenMo int64 // CLOCK_MONOTONIC at frozenAt
}

// awaitGoAhead waits (at most goAheadWait) for the client's one byte.
func awaitGoAhead(control *os.File) bool {
	if control == nil {
		return true
	}
	_ = control.SetReadDeadline(time.Now().Add(goAheadWait))
	n, _ := control.Read(make([]byte, 1))
	control.Close()
	return n == 1
}

// send writes the holder's one message to the client, once.
func (h *holding) send(msg holderMsg) {
	if h.reported {
		return
	}
	h.reported = true
	if err := json.NewEncoder(h.report).Encode(msg); err != nil {
		h.log.Warn("report pipe", "err", err)
	}
	h.report.Close()
}

// load reads the run the client reserved, which must still be starting.
func (h *holding) load(runID string) error {
	run, err := h.a.Dir.Read(runID)
	if err != nil {
		return err
	}
	if run.Status != state.StatusStarting {
		return fmt.Errorf("run %s is %s, not starting", runID, run.Status)
	}
	h.run = run
	h.a.keepMountFDs(run.Mounts)
	return nil
}

// fail records the run failed (unless a thaw is outstanding: then it stays
// active for the retries) and reports the error.
func (h *holding) fail(err error) error {
	h.log.Error("freeze failed; undone", "err", err)
	failed := *h.run
	failed.Status, failed.Error = state.StatusFailed, err.Error()
	if len(h.run.ThawPending) > 0 { // not finished while a thaw is outstanding
		failed.Status = h.run.Status
		failed.Error = err.Error() + "; " + fmt.Sprintf("thaw of %v did not return, left to retry", h.run.ThawPending)
	}
	failed.RCURestore = false // this holder restored it, or never switched it on
	if werr := h.a.update(&failed); werr != nil && !errors.Is(werr, errSuperseded) {
		h.log.Error("state write", "err", werr)
	}
	h.send(holderMsg{Code: contract.ExitCodeOf(err), Error: err.Error()})
	return err
}

// undo thaws what was frozen, releases the lock, and fails.
func (h *holding) undo(err error) error {
	out, _ := h.a.thawMounts(h.frozen)
	h.run.ThawPending = pendingThaws(out)
	if h.lock != nil {
		rctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
		if rerr := h.lock.Release(rctx); rerr != nil {
			h.log.Error("unlock after failed freeze", "err", rerr)
		} else {
			h.run.ReplicaAppliers = nil
		}
		cancel()
	}
	return h.fail(err)
}

// openSocket listens on the run's socket, where thaw finds the holder.
func (h *holding) openSocket() error {
	sock := h.a.Dir.SocketPath(h.run.RunID)
	_ = os.Remove(sock)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fmt.Errorf("holder socket: %w", state.Full(h.a.Dir.Path, err))
	}
	_ = os.Chmod(sock, 0o600)
	h.ln = ln
	return nil
}

// armGuardian fixes the final deadline, starts the guardian with it and
// records both (with whether expedited RCU must be restored).
func (h *holding) armGuardian() error {
	a, run := h.a, h.run
	lockStart := time.Now()
	h.deadline = finalDeadline(run.Timeout)
	h.self = state.Self()
	args := append([]string{CmdGuardian, "--state-dir", a.Dir.Path, "--run-id", run.RunID,
		"--holder-pid", strconv.Itoa(h.self.PID), "--holder-start", strconv.FormatUint(h.self.Start, 10)},
		h.deadline.guardianArgs()...)
	// The guardian inherits this process's descriptors on the mounts, opened
	// before the first freeze: it may start after the freezes (a loaded
	// machine), when a mount point could already be unmounted or covered.
	files, fds := a.inheritableMountFDs(run.Mounts)
	fdsJSON, _ := json.Marshal(fds)
	g := exec.Command(a.Exe, append(args, "--run-json", guardianRun(run), "--mount-fds", string(fdsJSON))...)
	g.Dir = "/"
	g.Env = detachedEnv()
	g.ExtraFiles = files
	g.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err := g.Start()
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("start guardian: %w", err)
	}
	go g.Wait() // reap it if it exits (or is killed) before us
	guardian, gerr := state.ProcOf(g.Process.Pid)
	if gerr != nil {
		guardian = state.Proc{PID: g.Process.Pid}
	}
	h.guardian = guardian
	run.Holder, run.Guardian = h.self, guardian
	h.deadline.record(run, true)
	run.LockStartedAt = lockStart
	if run.ExpediteRCU && a.RCU.Expedited != nil && a.RCU.Set != nil {
		// Recorded before it is switched on, so that a holder killed in
		// between never leaves the machine-wide knob on for good.
		if on, err := a.RCU.Expedited(); err == nil && !on {
			run.RCURestore = true
		}
	}
	if err := a.update(run); err != nil {
		_ = killProc(guardian)
		return err
	}
	h.log = h.log.With("deadline", h.deadline.Wall.Format(time.RFC3339Nano))
	h.log.Info("guardian armed", "guardian_pid", guardian.PID)
	return nil
}

// armTimer arms the systemd timer in the background; its unit is reported.
func (h *holding) armTimer(ctx context.Context) {
	h.timer = make(chan string, 1)
	if h.a.SystemdTimer == nil {
		h.timer <- ""
		return
	}
	armed := *h.run // a copy: the goroutine must not race the updates that follow
	go func() {
		unit, err := h.a.SystemdTimer(ctx, &armed)
		if err != nil {
			h.log.Warn("systemd timer not armed", "err", err)
		}
		h.timer <- unit
	}()
}

// lockMySQL takes the MySQL lock (not past the deadline).
func (h *holding) lockMySQL(ctx context.Context) error {
	h.info = contract.LockInfo{Mode: contract.LockNone}
	if h.run.MySQL.Mode != contract.LockNone {
		lockCtx, cancel := context.WithTimeout(ctx, h.deadline.Remaining())
		if err := h.a.recordRunningAppliers(lockCtx, h.run); err != nil {
			cancel()
			return err
		}
		l, li, err := h.a.MySQL.Acquire(lockCtx, h.run.MySQL)
		cancel()
		if err != nil {
			if l != nil {
				_ = l.Release(context.Background())
			}
			return err
		}
		h.lock, h.info = l, li
	}
	if h.info.Requested == "" {
		h.info.Requested = h.run.LockRequested
	}
	return nil
}

// freeze records that freezing starts, then freezes every mount in order.
// Everything must be held before the deadline, with the lock intact.
func (h *holding) freeze() ([]contract.MountReport, error) {
	a, run := h.a, h.run
	// From here on the mounts may be frozen: record it first (~0.1 ms on
	// tmpfs). Unrecorded, a holder killed now would leave frozen mounts that
	// the guardian and recovery take for untouched; so no record, no freeze.
	run.Freezing = true
	if h.info.Replication != nil {
		run.ReplicaAppliers = h.info.Replication.StoppedAppliers
	}
	if err := a.update(run); err != nil {
		run.Freezing = false
		return nil, fmt.Errorf("record freezing: %w", err)
	}
	mounts := make([]contract.MountReport, 0, len(run.Mounts))
	if run.RCURestore {
		if err := a.RCU.Set(true); err != nil {
			h.log.Warn("expedite RCU", "err", err)
		}
	}
	var freezeErr error
	for _, m := range run.Mounts {
		t0 := time.Now()
		if err := a.freezeFS(m.Path, m.Dev); err != nil {
			freezeErr = err
			break
		}
		h.frozen = append(h.frozen, m)
		vols := m.VolumeIDs
		if vols == nil {
			vols = []string{}
		}
		mounts = append(mounts, contract.MountReport{Path: m.Path, FSType: m.FSType, Device: m.Device,
			VolumeIDs: vols, EC2Devices: m.EC2Devices, FreezeMS: ms(time.Since(t0))})
	}
	h.frozenAt, h.frozenMo = time.Now(), state.MonoNow()
	a.restoreRCU(run)
	run.RCURestore = false // recorded by the next state write (held, or failed)
	switch {
	case freezeErr != nil:
		return nil, freezeErr
	case h.deadline.Passed():
		return nil, fmt.Errorf("deadline (%v) passed while locking and freezing", run.Timeout)
	case h.lock != nil && h.lock.Loss() != nil:
		return nil, fmt.Errorf("MySQL lock lost before everything was held: %s", h.lock.Loss().Reason)
	}
	return mounts, nil
}

// reportHeld records the run held and sends the FreezeReport. It fails only
// if someone else finished the run meanwhile.
func (h *holding) reportHeld(mounts []contract.MountReport) error {
	run := h.run
	var unit string
	select {
	case unit = <-h.timer:
	case <-time.After(timerUnitWait):
		h.log.Warn("systemd-run slow; reporting without the timer unit")
	}
	hostname, _ := os.Hostname()
	if h.lock != nil {
		run.ConnectionID = h.lock.ConnectionID()
	}
	rep := &contract.FreezeReport{
		RunID: run.RunID, Hostname: hostname, InstanceID: run.InstanceID,
		StartedAt: run.StartedAt, FrozenAt: h.frozenAt, Deadline: h.deadline.Wall,
		TimeoutMS: run.Timeout.Milliseconds(), Lock: h.info, Mounts: mounts,
		HolderPID: h.self.PID, GuardianPID: h.guardian.PID,
		HeldMS:         ms(time.Duration(h.frozenMo - run.StartMono)),
		TimerUnit:      unit,
		FailsafeLayers: FailsafeLayers(true, unit != ""),
	}
	run.Status, run.FrozenAt, run.Freeze, run.TimerUnit = state.StatusHeld, h.frozenAt, rep, unit
	if err := h.a.update(run); errors.Is(err, errSuperseded) {
		// Recovery or a thaw finished this run while we froze: it must not
		// stay held behind their back.
		return err
	} else if err != nil {
		// The "starting" record still names every mount, so recovery and the
		// guardian can thaw them; keep holding.
		h.log.Error("state write", "err", err)
	}
	h.log.Info("held", "held_ms", rep.HeldMS, "lock", h.info.Mode)
	h.send(holderMsg{Freeze: rep})
	return nil
}

// serve waits for the first of: a thaw request, the deadline, a termination
// signal; thaws (filesystems first), unlocks, records and answers.
func (a *Agent) serve(run *state.Run, lock Lock, ln *net.UnixListener, deadline Deadline) error {
	reqs := make(chan thawRequest)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go a.handleConn(c, reqs)
		}
	}()
	timer := time.NewTimer(deadline.Remaining())
	defer timer.Stop()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	var lost <-chan struct{}
	if lock != nil {
		lost = lock.Lost()
	}
	var req *thawRequest
	by := contract.ThawedByCommand
wait:
	for {
		select {
		case r := <-reqs:
			req = &r
		case <-timer.C:
			by = contract.ThawedByDeadline
		case s := <-sigs:
			a.log().Warn("signal; thawing now", "signal", s.String())
			by = contract.ThawedByRecovery
		case <-lost:
			// The filesystems stay frozen until thaw or deadline as asked;
			// the loss is recorded for status and the ThawReport.
			lost = nil
			a.recordLockLoss(run, lock.Loss())
			continue wait
		}
		break
	}
	if by == contract.ThawedByCommand && deadline.Passed() {
		by = contract.ThawedByDeadline // the command lost the race with the deadline
	}
	rep := a.release(run, lock, by)
	if req != nil {
		req.reply <- rep
		select {
		case <-req.written:
		case <-time.After(replyWrittenWait):
		}
	}
	return nil
}

func (a *Agent) handleConn(c net.Conn, reqs chan<- thawRequest) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(thawRequestWait))
	var req socketRequest
	if err := json.NewDecoder(c).Decode(&req); err != nil || req.Op != "thaw" {
		_ = json.NewEncoder(c).Encode(map[string]string{"error": "unknown request"})
		return
	}
	r := thawRequest{reply: make(chan *contract.ThawReport, 1), written: make(chan struct{})}
	defer close(r.written)
	select {
	case reqs <- r:
	case <-time.After(thawRequestWait):
		return
	}
	rep := <-r.reply
	_ = json.NewEncoder(c).Encode(rep)
}

// release thaws every mount, then unlocks MySQL, then records the thaw.
func (a *Agent) release(run *state.Run, lock Lock, by string) *contract.ThawReport {
	mounts, err := a.thawMounts(run.Mounts)
	if err != nil {
		a.log().Error("thaw", "err", err)
	}
	unlocked := true
	if lock != nil {
		ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
		if err := lock.Release(ctx); err != nil {
			a.log().Error("unlock", "err", err)
			unlocked = false
		}
		cancel()
	}
	now := time.Now()
	rep := contract.ThawReport{RunID: run.RunID, ThawedBy: by, HeldMS: heldMS(run, now), Mounts: mounts,
		MySQLUnlocked: unlocked, Late: by != contract.ThawedByCommand, ThawedAt: now.UTC()}
	if lock != nil {
		rep.LockLost = lock.Loss()
	}
	stored, err := a.finish(run, rep)
	if err != nil {
		a.log().Error("state write", "err", err)
	}
	a.log().Info("thawed and unlocked", "by", by, "held_ms", rep.HeldMS)
	if stored != nil && stored.Thaw != nil && stored.Thaw.ThawedBy != rep.ThawedBy {
		// The guardian recorded the deadline first: that is what happened.
		return stored.Thaw
	}
	return &rep
}

// recordLockLoss writes a lock loss into the run's record, for status.
func (a *Agent) recordLockLoss(run *state.Run, loss *contract.LockLoss) {
	a.log().Error("MySQL lock lost during the hold", "reason", loss.Reason, "after_ms", loss.AfterMS)
	run.LockLost = loss
	if err := a.update(run); err != nil {
		a.log().Error("state write", "err", err)
	}
}

// guardianRun is the run as the guardian gets it on its command line: what
// it thaws at the deadline if the state file cannot be read then — or could
// not even be read when it started, which may be after the first freeze.
// No secret is in it (the MySQL password stays in the defaults file).
func guardianRun(run *state.Run) string {
	b, err := json.Marshal(run)
	if err != nil {
		return ""
	}
	return string(b)
}
