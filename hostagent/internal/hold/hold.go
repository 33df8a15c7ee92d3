// Package hold keeps filesystems frozen and MySQL locked between `hostagent
// freeze` and `hostagent thaw`, under a hard deadline.
//
// Processes (all the same binary, re-executed through /proc/self/exe):
//
//   - client (`freeze`): validates, reserves the mounts in the state dir, starts
//     the holder and waits for its one report on a pipe, prints it, exits.
//   - holder (hidden `__holder`): detached (own session, stdio on /dev/null, no
//     inherited descriptors but the report pipe). Starts the guardian, then locks
//     MySQL (it must own the connection: a connection cannot be handed over),
//     freezes, reports, and serves `thaw` on a unix socket until its own deadline.
//   - guardian (hidden `__guardian`): a separate detached process that thaws at
//     the deadline whatever the holder does, then SIGKILLs it (closing its
//     connection releases the MySQL lock).
//   - any later invocation recovers runs whose processes all died (Recover).
package hold

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/state"
	"github.com/quiesce/quiesce/internal/fsfreeze"
)

// Lock is a held MySQL lock (mysqllock.*Lock).
type Lock interface {
	Release(ctx context.Context) error
	ConnectionID() uint64
}

// MySQL is what the hold needs from the lock package; function fields so tests fake it.
type MySQL struct {
	Acquire        func(ctx context.Context, o state.MySQL) (Lock, contract.LockInfo, error)
	KillConnection func(ctx context.Context, o state.MySQL, id uint64) error
	// RestartAppliers starts again, from a new connection, the replica
	// appliers a replica-mode lock stopped (mysqllock.RestartAppliers).
	RestartAppliers func(ctx context.Context, o state.MySQL, channels []string) error
}

// FS freezes and thaws; defaults to the real ioctls.
type FS struct {
	Freeze func(path string, dev uint64) error
	Thaw   func(path string) (wasFrozen bool, err error)
}

// Agent carries the dependencies of every role.
type Agent struct {
	Dir   *state.Dir
	Exe   string // binary to re-execute for holder and guardian
	MySQL MySQL
	FS    FS
	Log   *slog.Logger
	// RCU reads and switches /sys/kernel/rcu_expedited for runs that ask for
	// it (fsfreeze.RCUExpedited/SetRCUExpedited); nil fields skip it.
	RCU RCUKnob
	// SystemdTimer arms the third fail-safe layer; nil or returning "" skips it.
	SystemdTimer func(ctx context.Context, run *state.Run) (unit string, err error)
	// mountFDs are the holder's and guardian's descriptors on each mount's
	// root, opened before the freeze: FITHAW through them reaches the frozen
	// filesystem even if its mount point was unmounted lazily or covered.
	mountFDs map[string]int
}

// keepMountFDs opens every mount of the run (real filesystems only) for thawFS.
// A mount whose path no longer is the validated device gets none: thawFS then
// reports it through the path check.
func (a *Agent) keepMountFDs(mounts []state.Mount) {
	if a.FS.Thaw != nil {
		return
	}
	a.mountFDs = make(map[string]int, len(mounts))
	for _, m := range mounts {
		if fd, err := fsfreeze.Open(m.Path, m.Dev); err == nil {
			a.mountFDs[m.Path] = fd
		}
	}
}

// RCUKnob is the machine-wide expedited-RCU switch.
type RCUKnob struct {
	Expedited func() (bool, error)
	Set       func(on bool) error
}

// restoreRCU switches expedited RCU back off for a run that switched it on
// (state.Run.RCURestore): the holder does it right after its freezes; the
// client, guardian, thaw and recovery do it when the holder died before.
func (a *Agent) restoreRCU(run *state.Run) {
	if !run.RCURestore || a.RCU.Set == nil {
		return
	}
	if err := a.RCU.Set(false); err != nil {
		a.log().Error("restore /sys/kernel/rcu_expedited", "run", run.RunID, "err", err)
		return
	}
	a.log().Info("restored /sys/kernel/rcu_expedited=0", "run", run.RunID)
}

// restartAppliers starts again the replica appliers that a replica-mode run
// stopped (state.Run.ReplicaAppliers) and are not recorded as started: the
// holder's connection closing does not start them, so the guardian, the
// client, thaw and recovery call this once the mounts are thawed (starting
// an applier against a frozen datadir would hang). It re-reads the record
// (the holder may have started them meanwhile), clears the list on
// success, and reports whether none is left stopped.
func (a *Agent) restartAppliers(ctx context.Context, run *state.Run) bool {
	if cur, err := a.Dir.Read(run.RunID); err == nil {
		run.ReplicaAppliers = cur.ReplicaAppliers
	}
	if len(run.ReplicaAppliers) == 0 {
		return true
	}
	if a.MySQL.RestartAppliers == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, restartAppliersTimeout)
	defer cancel()
	if err := a.MySQL.RestartAppliers(ctx, run.MySQL, run.ReplicaAppliers); err != nil {
		a.log().Error("restart replica appliers", "run", run.RunID, "channels", fmt.Sprintf("%q", run.ReplicaAppliers), "err", err)
		return false
	}
	a.log().Info("replica appliers started again", "run", run.RunID, "channels", fmt.Sprintf("%q", run.ReplicaAppliers))
	run.ReplicaAppliers = nil
	return true
}

// Hidden subcommand names.
const (
	CmdHolder   = "__holder"
	CmdGuardian = "__guardian"
	CmdRecover  = "recover"
)

const (
	// guardianGrace is how long the guardian, having thawed at the deadline,
	// lets the holder unlock and exit on its own before SIGKILL.
	guardianGrace = 150 * time.Millisecond
	// overdueSlack: a run still active this long after its deadline is treated
	// as wedged by recovery even if its processes are alive.
	overdueSlack = 2 * time.Second
	// dirLockWait bounds waiting for the state dir lock (held for microseconds
	// normally; longer only if a process got stuck holding it).
	dirLockWait = 5 * time.Second
	// recoverLockWait is shorter: recovery runs opportunistically at the start
	// of every command and must not delay them all behind a stuck process.
	recoverLockWait = time.Second
	// unlockTimeout bounds UNLOCK TABLES / connection close after a thaw.
	unlockTimeout = 3 * time.Second
	// restartAppliersTimeout bounds starting replica appliers from a new
	// connection (connect, one START per channel).
	restartAppliersTimeout = 10 * time.Second
	// keepFinished: thawed/failed runs stay this long so thaw stays idempotent.
	keepFinished = 24 * time.Hour
)

func (a *Agent) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return a.Log
}

func (a *Agent) freezeFS(path string, dev uint64) error {
	if a.FS.Freeze != nil {
		return a.FS.Freeze(path, dev)
	}
	return fsfreeze.Freeze(path, dev)
}

func (a *Agent) thawFS(m state.Mount) (bool, error) {
	if a.FS.Thaw != nil {
		return a.FS.Thaw(m.Path)
	}
	if fd, ok := a.mountFDs[m.Path]; ok {
		return fsfreeze.ThawFD(fd, m.Path)
	}
	return fsfreeze.ThawDev(m.Path, m.Dev)
}

// thawMounts thaws every mount of the run in reverse freeze order and returns
// the outcomes in the run's (path) order. It never stops at an error.
func (a *Agent) thawMounts(mounts []state.Mount) ([]contract.MountThaw, error) {
	out := make([]contract.MountThaw, len(mounts))
	var errs []error
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		out[i] = contract.MountThaw{Path: m.Path, Thawed: true}
		was, err := a.thawFS(m)
		if err != nil {
			out[i] = contract.MountThaw{Path: m.Path, Thawed: false, Error: err.Error()}
			errs = append(errs, err)
			continue
		}
		a.log().Info("thawed", "mount", m.Path, "was_frozen", was)
	}
	return out, errors.Join(errs...)
}

// thawRun thaws the mounts of a run its holder no longer serves. A run still
// starting that has not recorded Freezing froze nothing — the holder records
// it before its first FIFREEZE — so its mounts are left alone: one of them
// may be frozen by someone else, and that freeze is theirs to end.
func (a *Agent) thawRun(run *state.Run) ([]contract.MountThaw, error) {
	if run.Status == state.StatusStarting && (run.Holder.PID == 0 || !run.Freezing) {
		out := make([]contract.MountThaw, len(run.Mounts))
		for i, m := range run.Mounts {
			out[i] = contract.MountThaw{Path: m.Path, Thawed: true}
		}
		return out, nil
	}
	return a.thawMounts(run.Mounts)
}

// finish records a thaw in the state file unless someone recorded one first
// (the holder and guardian may both act at the deadline; the first word stands).
func (a *Agent) finish(runID string, rep contract.ThawReport) (*state.Run, error) {
	unlock, lockErr := a.Dir.Lock(dirLockWait)
	if lockErr == nil {
		defer unlock()
	}
	run, err := a.Dir.Read(runID)
	if err != nil {
		return nil, err
	}
	if !run.Active() {
		return run, nil
	}
	run.Status = state.StatusThawed
	run.Thaw = &rep
	run.RCURestore = false // every caller restored it before recording the thaw
	if rep.MySQLUnlocked {
		run.ReplicaAppliers = nil // the caller's release or restart started them
	}
	if err := a.Dir.Write(run); err != nil {
		return run, err
	}
	return run, nil
}

// errSuperseded: another process (recovery, a thaw from the state file)
// finished the run while its holder was still working on it.
var errSuperseded = errors.New("run was finished by another process meanwhile")

// update records the holder's view of an active run. It runs under the state
// lock like every decision about runs (the busy check, recovery), so recovery
// never judges a run by a record the holder is replacing; and it refuses to
// revive a run that someone else finished meanwhile.
func (a *Agent) update(run *state.Run) error {
	unlock, lockErr := a.Dir.Lock(dirLockWait)
	if lockErr == nil {
		defer unlock()
	} else {
		a.log().Warn("state lock unavailable; writing without it", "err", lockErr)
	}
	if cur, err := a.Dir.Read(run.RunID); err == nil && !cur.Active() {
		return fmt.Errorf("run %s is %s: %w", run.RunID, cur.Status, errSuperseded)
	}
	return a.Dir.Write(run)
}

func heldMS(run *state.Run, at time.Time) float64 {
	from := run.LockStartedAt
	if from.IsZero() {
		from = run.StartedAt
	}
	return ms(at.Sub(from))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// killProc SIGKILLs p through a pidfd, so a reused pid is never hit.
func killProc(p state.Proc) error {
	if !p.Alive() {
		return nil
	}
	fd, err := unix.PidfdOpen(p.PID, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if !p.Alive() { // recheck after the pidfd pins the process
		return nil
	}
	return unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
}

// waitExit waits until p is gone (or a zombie) or wait passes.
func waitExit(p state.Proc, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for p.Alive() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

func openLog(path string) *slog.Logger {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(f, nil)).With("pid", os.Getpid())
}

// errHolderGone: the holder exited or never answered.
var errHolderGone = errors.New("holder gone")

// describe names a run for messages.
func describe(run *state.Run) string {
	return fmt.Sprintf("run %s (%s since %s)", run.RunID, run.Status, run.StartedAt.Format(time.RFC3339))
}

// closeOnExecFrom marks every descriptor >= from close-on-exec. Go's os/exec
// passes only stdio and ExtraFiles to a child it creates, but descriptors this
// process inherited without FD_CLOEXEC (a leaked pipe of the SSM agent or a
// shell, say) would still reach the holder and guardian and keep the freeze
// command's caller waiting for EOF until the hold ends.
func closeOnExecFrom(from int) {
	if err := unix.CloseRange(uint(from), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return
	}
	// Kernels before 5.11: walk /proc/self/fd.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= from {
			unix.CloseOnExec(fd)
		}
	}
}
