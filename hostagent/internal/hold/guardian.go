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
//
// given is the run as the holder passed it (nil if none): the guardian's
// memory of what to thaw whatever becomes of the state file; fds are the
// mount descriptors it inherited from the holder (path -> descriptor).
func (a *Agent) Guardian(ctx context.Context, runID string, holder state.Proc, deadline Deadline, given *state.Run,
	fds map[string]int) error {
	a.Log = openLog(a.Dir.LogPath(runID)).With("role", "guardian", "run", runID)
	// SIGTERM/SIGINT/SIGHUP must not take the fail-safe down (a shutdown kills
	// everything anyway; a stray signal should not). SIGKILL still works.
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	// The holder starts this process before its first freeze: the mounts
	// opened now are the ones it will freeze, reachable at the deadline even
	// if a mount point is unmounted (lazily) or covered meanwhile.
	// What it reads is also kept in memory (last): the deadline thaw must not
	// depend on the state file staying readable.
	last, err := a.Dir.Read(runID)
	if err != nil {
		a.log().Error("state unreadable at start; using the run passed by the holder", "err", err)
		last = given
	}
	if given != nil {
		a.adoptMountFDs(given.Mounts, fds)
	}
	if last != nil {
		a.keepMountFDs(last.Mounts) // any the holder could not pass
	}
	last, finished := a.watchUntilDeadline(runID, holder, deadline, last)
	if finished {
		return nil
	}
	run, err := a.Dir.Read(runID)
	if err != nil {
		if last == nil {
			a.log().Error("deadline: cannot read state, and none was read before", "err", err)
			return err
		}
		// Thaw what this process read before, through the descriptors it
		// holds. Whether the holder got to its first FIFREEZE is unknown
		// then: thaw as if it did (leaving a mount frozen is the worse error).
		a.log().Error("deadline: state unreadable; thawing the mounts read before", "err", err)
		mem := *last
		mem.Holder, mem.Freezing = holder, true
		run = &mem
	}
	if !run.Active() {
		return nil
	}
	a.log().Warn("deadline reached; thawing")
	return a.deadlineThaw(ctx, run, holder)
}

// watchUntilDeadline sleeps until the deadline, waking early only when the
// holder exits, to see whether the run is over (finished: the guardian has
// nothing left to do), has a thaw to retry now, or needs expedited RCU back.
// It returns the last run it could read.
func (a *Agent) watchUntilDeadline(runID string, holder state.Proc, deadline Deadline, last *state.Run) (*state.Run, bool) {
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
		remaining := deadline.Remaining()
		if remaining <= 0 {
			return last, false
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
			time.Sleep(min(remaining, guardianPoll))
			holderGone = holderGone || !holder.Alive()
		}
		if !holderGone {
			continue
		}
		run, err := a.Dir.Read(runID)
		if err != nil {
			continue
		}
		last = run
		switch {
		case !run.Active():
			a.log().Info("run finished; guardian exits", "status", run.Status)
			return last, true
		case len(run.ThawPending) > 0:
			a.log().Warn("holder gone with a thaw outstanding; retrying now", "pending", run.ThawPending)
			return last, false
		case run.RCURestore && !rcuRestored:
			// The holder died while freezing: the mounts stay held until
			// the deadline, but the machine-wide knob goes back now.
			a.restoreRCU(run)
			rcuRestored = true
		}
	}
}

// deadlineThaw is the guardian's act at the deadline: thaw, end the holder,
// thaw once more (a FITHAW that ran just before the holder's last FIFREEZE
// found nothing to thaw; with the holder gone nothing can freeze again), and
// record. While a FITHAW has not returned the run stays active and the
// guardian keeps retrying for guardianRetryFor (then recovery does).
func (a *Agent) deadlineThaw(ctx context.Context, run *state.Run, holder state.Proc) error {
	// The knob first: a FITHAW may wait behind a syncfs the killed holder
	// left in the kernel (seconds with much dirty data).
	a.restoreRCU(run)
	mounts, terr := a.thawRun(run)
	if terr != nil {
		a.log().Error("deadline thaw", "err", terr)
	}
	exited := a.endHolder(ctx, run, holder)
	if exited {
		again, _ := a.thawRun(run)
		mounts = mergeThaws(mounts, again)
	}
	// Appliers start only on thawed mounts (they would write into a frozen
	// datadir); with a thaw outstanding recovery starts them after it.
	appliersRunning := len(pendingThaws(mounts)) == 0 && a.restartAppliers(ctx, run)
	for retryUntil := time.Now().Add(guardianRetryFor); ; {
		now := time.Now()
		rep := contract.ThawReport{RunID: run.RunID, ThawedBy: contract.ThawedByDeadline, HeldMS: heldMS(run, now),
			Mounts: mounts, MySQLUnlocked: (exited || run.LockMode == contract.LockNone) && appliersRunning, Late: true, ThawedAt: now.UTC(),
			LockLost: run.LockLost}
		if _, err := a.finish(run, rep); err != nil {
			a.log().Error("state write", "err", err)
		}
		if len(pendingThaws(mounts)) == 0 || now.After(retryUntil) {
			break
		}
		time.Sleep(guardianRetryEvery)
		again, _ := a.thawRun(run)
		mounts = mergeThaws(mounts, again)
	}
	os.Remove(a.Dir.SocketPath(run.RunID))
	return nil
}

// endHolder gives the holder a moment to unlock and exit on its own, then
// SIGKILLs it; if even that does not end it, KILLs its MySQL connection. It
// reports whether the holder is gone.
func (a *Agent) endHolder(ctx context.Context, run *state.Run, holder state.Proc) bool {
	if waitExit(holder, guardianGrace) {
		return true
	}
	a.log().Warn("holder still alive after the deadline; SIGKILL", "holder_pid", holder.PID)
	_ = killProc(holder)
	if waitExit(holder, killWait) {
		return true
	}
	if run.ConnectionID != 0 && a.MySQL.KillConnection != nil {
		kctx, cancel := context.WithTimeout(ctx, killConnectionWait)
		if err := a.MySQL.KillConnection(kctx, run.MySQL, run.ConnectionID); err != nil {
			a.log().Error("KILL of the holder's connection", "err", err)
		}
		cancel()
	}
	return false
}

// mergeThaws combines two passes over the same mounts: thawed in either counts.
func mergeThaws(first, again []contract.MountThaw) []contract.MountThaw {
	out := append([]contract.MountThaw(nil), first...)
	for i := range out {
		if i < len(again) && !out[i].Thawed {
			out[i] = again[i]
		}
	}
	return out
}
