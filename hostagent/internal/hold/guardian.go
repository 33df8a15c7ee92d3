package hold

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/state"
)

// Guardian is the guardian process's main. It sleeps until the deadline
// (waking early only to notice that the holder exited and the run is over),
// then thaws every mount of the run, gives the holder a moment to unlock and
// exit, SIGKILLs it otherwise (the server drops the lock with the connection)
// and records thawed_by=deadline.
func (a *Agent) Guardian(ctx context.Context, runID string, holder state.Proc, deadlineMono int64) error {
	a.Log = openLog(a.Dir.LogPath(runID)).With("role", "guardian", "run", runID)
	// SIGTERM/SIGINT/SIGHUP must not take the fail-safe down (a shutdown kills
	// everything anyway; a stray signal should not). SIGKILL still works.
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	// The holder starts this process before its first freeze: the mounts
	// opened now are the ones it will freeze, reachable at the deadline even
	// if a mount point is unmounted (lazily) or covered meanwhile.
	if run, err := a.Dir.Read(runID); err == nil {
		a.keepMountFDs(run.Mounts)
	}

	holderGone := !holder.Alive()
	pidfd := -1
	if !holderGone {
		if fd, err := unix.PidfdOpen(holder.PID, 0); err == nil {
			pidfd = fd
			defer unix.Close(fd)
			holderGone = !holder.Alive() // pinned now; recheck against pid reuse
		}
	}
	rcuRestored := false
	for {
		remaining := state.UntilMono(deadlineMono)
		if remaining <= 0 {
			break
		}
		if !holderGone && pidfd >= 0 {
			msec := int((remaining + time.Millisecond - 1) / time.Millisecond)
			fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, msec)
			if errors.Is(err, unix.EINTR) || (err == nil && n == 0) {
				continue
			}
			holderGone = true
		} else {
			// No pidfd, or the holder is gone: poll the state (a thaw command
			// may finish the run from the state file) in short ticks.
			time.Sleep(min(remaining, 50*time.Millisecond))
			holderGone = holderGone || !holder.Alive()
		}
		if holderGone {
			run, err := a.Dir.Read(runID)
			if err == nil && !run.Active() {
				a.log().Info("run finished; guardian exits", "status", run.Status)
				return nil
			}
			if err == nil && run.RCURestore && !rcuRestored {
				// The holder died while freezing: the mounts stay held until
				// the deadline, but the machine-wide knob goes back now.
				a.restoreRCU(run)
				rcuRestored = true
			}
		}
	}

	run, err := a.Dir.Read(runID)
	if err != nil {
		a.log().Error("deadline: cannot read state", "err", err)
		return err
	}
	if !run.Active() {
		return nil
	}
	a.log().Warn("deadline reached; thawing")
	mounts, terr := a.thawRun(run)
	if terr != nil {
		a.log().Error("deadline thaw", "err", terr)
	}
	a.restoreRCU(run)
	exited := waitExit(holder, guardianGrace)
	if !exited {
		a.log().Warn("holder still alive after the deadline; SIGKILL", "holder_pid", holder.PID)
		_ = killProc(holder)
		exited = waitExit(holder, time.Second)
		if !exited && run.ConnectionID != 0 && a.MySQL.KillConnection != nil {
			kctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := a.MySQL.KillConnection(kctx, run.MySQL, run.ConnectionID); err != nil {
				a.log().Error("KILL of the holder's connection", "err", err)
			}
			cancel()
		}
	}
	appliersRunning := a.restartAppliers(ctx, run)
	now := time.Now()
	rep := contract.ThawReport{RunID: runID, ThawedBy: contract.ThawedByDeadline, HeldMS: heldMS(run, now),
		Mounts: mounts, MySQLUnlocked: (exited || run.LockMode == contract.LockNone) && appliersRunning, Late: true, ThawedAt: now.UTC()}
	if _, err := a.finish(runID, rep); err != nil {
		a.log().Error("state write", "err", err)
	}
	os.Remove(a.Dir.SocketPath(runID))
	return nil
}
