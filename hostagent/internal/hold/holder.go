package hold

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// goAheadWait bounds how long a started holder waits for the client's go-ahead.
const goAheadWait = 30 * time.Second

// Holder is the detached holder's main: wait for the client's go-ahead on
// control (fd 4; EOF means the client gave up: exit), start the guardian,
// lock, freeze, report on reportPipe (fd 3), then hold until thaw, deadline or
// SIGTERM. It never touches the frozen mounts after freezing them.
func (a *Agent) Holder(ctx context.Context, runID string, reportPipe, control *os.File) error {
	// Nothing this process holds (the report pipe included) may reach the guardian.
	closeOnExecFrom(3)
	if control != nil {
		_ = control.SetReadDeadline(time.Now().Add(goAheadWait))
		n, _ := control.Read(make([]byte, 1))
		control.Close()
		if n != 1 {
			reportPipe.Close()
			return nil // aborted before anything was done: nothing to undo or report
		}
	}
	a.Log = openLog(a.Dir.LogPath(runID)).With("role", "holder", "run", runID)
	reported := false
	send := func(msg holderMsg) {
		if reported {
			return
		}
		reported = true
		if err := json.NewEncoder(reportPipe).Encode(msg); err != nil {
			a.log().Warn("report pipe", "err", err)
		}
		reportPipe.Close()
	}
	defer send(holderMsg{Code: contract.ExitFailed, Error: "holder exited without a report"})

	run, err := a.Dir.Read(runID)
	if err != nil {
		send(holderMsg{Code: contract.ExitFailed, Error: err.Error()})
		return err
	}
	if run.Status != state.StatusStarting {
		err := fmt.Errorf("run %s is %s, not starting", runID, run.Status)
		send(holderMsg{Code: contract.ExitFailed, Error: err.Error()})
		return err
	}
	a.keepMountFDs(run.Mounts)
	fail := func(err error) error {
		a.log().Error("freeze failed; undone", "err", err)
		failed := *run
		failed.Status, failed.Error = state.StatusFailed, err.Error()
		failed.RCURestore = false // this holder restored it, or never switched it on
		if werr := a.update(&failed); werr != nil && !errors.Is(werr, errSuperseded) {
			a.log().Error("state write", "err", werr)
		}
		send(holderMsg{Code: contract.ExitCodeOf(err), Error: err.Error()})
		return err
	}

	sock := a.Dir.SocketPath(runID)
	_ = os.Remove(sock)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fail(fmt.Errorf("holder socket: %w", err))
	}
	defer os.Remove(sock)
	defer ln.Close()
	_ = os.Chmod(sock, 0o600)

	// The deadline is fixed here, before the guardian starts and before the
	// first lock or freeze: never later than timeout after the command started.
	lockStart := time.Now()
	deadlineMono := state.MonoNow() + int64(run.Timeout)
	deadline := lockStart.Add(run.Timeout)
	self := state.Self()
	g := exec.Command(a.Exe, CmdGuardian, "--state-dir", a.Dir.Path, "--run-id", runID,
		"--holder-pid", strconv.Itoa(self.PID), "--holder-start", strconv.FormatUint(self.Start, 10),
		"--deadline-mono", strconv.FormatInt(deadlineMono, 10))
	g.Dir = "/"
	g.Env = detachedEnv()
	g.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := g.Start(); err != nil {
		return fail(fmt.Errorf("start guardian: %w", err))
	}
	go g.Wait() // reap it if it exits (or is killed) before us
	guardian, gerr := state.ProcOf(g.Process.Pid)
	if gerr != nil {
		guardian = state.Proc{PID: g.Process.Pid}
	}
	run.Holder, run.Guardian = self, guardian
	run.Deadline, run.DeadlineMono, run.DeadlineFinal = deadline, deadlineMono, true
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
		return fail(err)
	}
	log := a.log().With("deadline", deadline.Format(time.RFC3339Nano))
	log.Info("guardian armed", "guardian_pid", guardian.PID)

	timerUnit := make(chan string, 1)
	if a.SystemdTimer != nil {
		armed := *run // a copy: the goroutine must not race the updates below
		go func() {
			unit, err := a.SystemdTimer(ctx, &armed)
			if err != nil {
				log.Warn("systemd timer not armed", "err", err)
			}
			timerUnit <- unit
		}()
	} else {
		timerUnit <- ""
	}

	info := contract.LockInfo{Mode: contract.LockNone}
	var lock Lock
	if run.MySQL.Mode != contract.LockNone {
		lockCtx, cancel := context.WithTimeout(ctx, state.UntilMono(deadlineMono))
		l, li, err := a.MySQL.Acquire(lockCtx, run.MySQL)
		cancel()
		if err != nil {
			if l != nil {
				_ = l.Release(context.Background())
			}
			return fail(err)
		}
		lock, info = l, li
	}
	if info.Requested == "" {
		info.Requested = run.LockRequested
	}

	var frozen []state.Mount
	undo := func(err error) error {
		a.thawMounts(frozen)
		if lock != nil {
			rctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
			if rerr := lock.Release(rctx); rerr != nil {
				log.Error("unlock after failed freeze", "err", rerr)
			} else {
				run.ReplicaAppliers = nil
			}
			cancel()
		}
		return fail(err)
	}
	// From here on the mounts may be frozen: record it first (~0.1 ms on
	// tmpfs). Unrecorded, a holder killed now would leave frozen mounts that
	// the guardian and recovery take for untouched; so no record, no freeze.
	run.Freezing = true
	if info.Replication != nil {
		run.ReplicaAppliers = info.Replication.StoppedAppliers
	}
	if err := a.update(run); err != nil {
		run.Freezing = false
		return undo(fmt.Errorf("record freezing: %w", err))
	}
	mounts := make([]contract.MountReport, 0, len(run.Mounts))
	if run.RCURestore {
		if err := a.RCU.Set(true); err != nil {
			log.Warn("expedite RCU", "err", err)
		}
	}
	var freezeErr error
	for _, m := range run.Mounts {
		t0 := time.Now()
		if err := a.freezeFS(m.Path, m.Dev); err != nil {
			freezeErr = err
			break
		}
		frozen = append(frozen, m)
		vols := m.VolumeIDs
		if vols == nil {
			vols = []string{}
		}
		mounts = append(mounts, contract.MountReport{Path: m.Path, FSType: m.FSType, Device: m.Device,
			VolumeIDs: vols, EC2Devices: m.EC2Devices, FreezeMS: ms(time.Since(t0))})
	}
	frozenAt, frozenMono := time.Now(), state.MonoNow()
	a.restoreRCU(run)
	run.RCURestore = false // recorded by the next state write (held, or failed)
	if freezeErr != nil {
		return undo(freezeErr)
	}
	if state.UntilMono(deadlineMono) <= 0 {
		return undo(fmt.Errorf("deadline (%v) passed while locking and freezing", run.Timeout))
	}

	var unit string
	select {
	case unit = <-timerUnit:
	case <-time.After(500 * time.Millisecond):
		log.Warn("systemd-run slow; reporting without the timer unit")
	}
	hostname, _ := os.Hostname()
	if lock != nil {
		run.ConnectionID = lock.ConnectionID()
	}
	rep := &contract.FreezeReport{
		RunID: runID, Hostname: hostname, InstanceID: run.InstanceID,
		StartedAt: run.StartedAt, FrozenAt: frozenAt, Deadline: deadline,
		TimeoutMS: run.Timeout.Milliseconds(), Lock: info, Mounts: mounts,
		HolderPID: self.PID, GuardianPID: guardian.PID,
		HeldMS:    ms(time.Duration(frozenMono - run.StartMono)),
		TimerUnit: unit,
	}
	run.Status, run.FrozenAt, run.Freeze, run.TimerUnit = state.StatusHeld, frozenAt, rep, unit
	if err := a.update(run); errors.Is(err, errSuperseded) {
		// Recovery or a thaw finished this run while we froze: it must not
		// stay held behind their back.
		return undo(err)
	} else if err != nil {
		// The "starting" record still names every mount, so recovery and the
		// guardian can thaw them; keep holding.
		log.Error("state write", "err", err)
	}
	log.Info("held", "held_ms", rep.HeldMS, "lock", info.Mode)
	send(holderMsg{Freeze: rep})
	return a.serve(run, lock, ln, deadlineMono)
}

// serve waits for the first of: a thaw request, the deadline, a termination
// signal; thaws (filesystems first), unlocks, records and answers.
func (a *Agent) serve(run *state.Run, lock Lock, ln *net.UnixListener, deadlineMono int64) error {
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
	timer := time.NewTimer(state.UntilMono(deadlineMono))
	defer timer.Stop()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	var req *thawRequest
	by := contract.ThawedByCommand
	select {
	case r := <-reqs:
		req = &r
	case <-timer.C:
		by = contract.ThawedByDeadline
	case s := <-sigs:
		a.log().Warn("signal; thawing now", "signal", s.String())
		by = contract.ThawedByRecovery
	}
	if by == contract.ThawedByCommand && state.UntilMono(deadlineMono) <= 0 {
		by = contract.ThawedByDeadline // the command lost the race with the deadline
	}
	rep := a.release(run, lock, by)
	if req != nil {
		req.reply <- rep
		select {
		case <-req.written:
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (a *Agent) handleConn(c net.Conn, reqs chan<- thawRequest) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var req socketRequest
	if err := json.NewDecoder(c).Decode(&req); err != nil || req.Op != "thaw" {
		_ = json.NewEncoder(c).Encode(map[string]string{"error": "unknown request"})
		return
	}
	r := thawRequest{reply: make(chan *contract.ThawReport, 1), written: make(chan struct{})}
	defer close(r.written)
	select {
	case reqs <- r:
	case <-time.After(5 * time.Second):
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
	stored, err := a.finish(run.RunID, rep)
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
