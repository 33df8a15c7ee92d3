package hold

// The hold's deadline is its safety property: whatever happens to the client,
// the holder or the MySQL server, every mount of a run is thawed and its lock
// released by the deadline, give or take the bounded slack of the layers
// below. Every timing rule of the hold is in this file; docs/architecture.md
// ("The hold and its deadline") explains the design.
//
//   - The client, reserving the mounts, records a provisional deadline: an
//     upper bound (timeout + provisionalSlack from the command's start), so
//     recovery can tell a wedged start from a live one before the holder runs.
//   - The holder fixes the final deadline, timeout from the moment before it
//     starts the guardian and before its first lock or freeze — never later
//     than timeout + provisionalSlack after the command started.
//   - The guardian gets the final deadline on its command line (CLOCK_MONOTONIC
//     ns, the same clock in every process, immune to wall-clock steps) and
//     thaws then, whatever the holder does.
//   - The systemd timer, where systemd runs, fires systemdTimerDelay after it
//     and runs `recover` for the run.
//   - A run still active overdueSlack after its deadline is wedged: recovery
//     thaws it even while its processes live.
//   - A thaw that comes after the final deadline is late (exit 4).

import (
	"strconv"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/state"
)

// The --timeout a hold may have. MaxTimeout stays below the MySQL session
// wait_timeout the lock connection sets (mysqllock's holdIdleTimeout, 15 min),
// so the server never drops an idle lock before the deadline.
const (
	MinTimeout     = contract.MinFreezeTimeout
	MaxTimeout     = contract.MaxFreezeTimeout
	DefaultTimeout = contract.DefaultFreezeTimeout
)

// Timing constants of the hold, all of them.
const (
	// provisionalSlack: the client's provisional deadline is timeout plus this
	// after the command's start (the holder's final one is always earlier).
	provisionalSlack = time.Second
	// answerSlack: how long past the timeout the client waits for the holder's
	// report before undoing everything itself.
	answerSlack = 2 * time.Second
	// holderExitWait: how long a closed report pipe waits for the holder's exit status.
	holderExitWait = 500 * time.Millisecond
	// goAheadWait bounds how long a started holder waits for the client's go-ahead.
	goAheadWait = 30 * time.Second
	// timerUnitWait: how long the holder's report waits for systemd-run to
	// name the timer unit before reporting without it.
	timerUnitWait = 500 * time.Millisecond
	// guardianGrace is how long the guardian, having thawed at the deadline,
	// lets the holder unlock and exit on its own before SIGKILL.
	guardianGrace = 150 * time.Millisecond
	// killWait: how long a SIGKILLed holder is given to disappear.
	killWait = time.Second
	// killConnectionWait bounds the guardian's KILL of the holder's MySQL connection.
	killConnectionWait = 2 * time.Second
	// guardianPoll: the guardian's state polling tick once the holder is gone
	// (or when it has no pidfd on it).
	guardianPoll = 50 * time.Millisecond
	// guardianRetryFor/Every: how long and how often the guardian retries a
	// deadline thaw that did not return, before leaving it to recovery.
	guardianRetryFor   = time.Minute
	guardianRetryEvery = 500 * time.Millisecond
	// overdueSlack: a run still active this long after its deadline is treated
	// as wedged by recovery even if its processes are alive.
	overdueSlack = 2 * time.Second
	// systemdTimerDelay: the systemd timer runs recover this long after the
	// deadline, with systemdTimerAccuracy; systemdRunWait bounds systemd-run.
	systemdTimerDelay    = time.Second
	systemdTimerAccuracy = 100 * time.Millisecond
	systemdRunWait       = 2 * time.Second
	// thawWait bounds how long a thaw waits for FITHAWs that do not return.
	thawWait = 3 * time.Second
	// thawStagger: how long one FITHAW may take before the next one is
	// started without waiting for it (they take well under a millisecond).
	thawStagger = 50 * time.Millisecond
	// unlockTimeout bounds UNLOCK TABLES / connection close after a thaw.
	unlockTimeout = 3 * time.Second
	// restartAppliersTimeout bounds starting replica appliers from a new
	// connection (connect, one START per channel).
	restartAppliersTimeout = 10 * time.Second
	// holderAnswerWait bounds the wait for a holding holder's answer; it
	// answers in milliseconds, so a silent one is hung (or stopped) and is
	// bypassed. holderDialWait bounds the connect.
	holderAnswerWait = 2 * time.Second
	holderDialWait   = time.Second
	// holderRecordWait: a thaw right after the go-ahead waits this long for
	// the holder to record itself rather than thawing behind its back.
	holderRecordWait = 2 * time.Second
	// thawRequestWait bounds one thaw request on the holder's socket, and
	// replyWrittenWait the holder's wait for its answer to be written.
	thawRequestWait  = 5 * time.Second
	replyWrittenWait = time.Second
	// dirLockWait bounds waiting for the state dir lock (held for microseconds
	// normally; longer only if a process got stuck holding it).
	dirLockWait = 5 * time.Second
	// recoverLockWait is shorter: recovery runs opportunistically at the start
	// of every command and must not delay them all behind a stuck process.
	recoverLockWait = time.Second
	// keepFinished: thawed/failed runs stay this long so thaw stays idempotent.
	keepFinished = 24 * time.Hour
)

// Deadline is an instant of the hold: Mono (CLOCK_MONOTONIC ns) is what every
// timer uses; Wall is for reports.
type Deadline struct {
	Wall time.Time
	Mono int64
}

// Remaining is the time left until d (negative once passed).
func (d Deadline) Remaining() time.Duration { return state.UntilMono(d.Mono) }

// Passed reports whether d has come.
func (d Deadline) Passed() bool { return d.Remaining() <= 0 }

// provisionalDeadline is the client's upper bound for a run it reserves.
func provisionalDeadline(req Request) Deadline {
	bound := req.Timeout + provisionalSlack
	return Deadline{Wall: req.StartedAt.Add(bound), Mono: req.StartMono + int64(bound)}
}

// finalDeadline is fixed by the holder before it starts the guardian and
// before its first lock or freeze: timeout from now.
func finalDeadline(timeout time.Duration) Deadline {
	return Deadline{Wall: time.Now().Add(timeout), Mono: state.MonoNow() + int64(timeout)}
}

// deadlineOf is the deadline recorded in a run (provisional or final).
func deadlineOf(run *state.Run) Deadline { return Deadline{Wall: run.Deadline, Mono: run.DeadlineMono} }

// record stores d in the run; final marks the holder's fixed deadline.
func (d Deadline) record(run *state.Run, final bool) {
	run.Deadline, run.DeadlineMono, run.DeadlineFinal = d.Wall, d.Mono, final
}

// reportWait is how long the client waits for the holder's report.
func reportWait(timeout time.Duration) time.Duration { return timeout + answerSlack }

// overdue is the rule that makes recovery thaw a run whose processes live:
// still active overdueSlack after its deadline.
func overdue(run *state.Run) bool {
	return run.DeadlineMono != 0 && deadlineOf(run).Remaining() < -overdueSlack
}

// lateThaw: a thaw of a run past its final deadline comes after the fail-safe.
func lateThaw(run *state.Run) bool { return run.DeadlineFinal && deadlineOf(run).Passed() }

// askWait is how long a thaw waits for the holder's answer: a holder still
// locking/freezing queues the request until it is done, at most until a
// little after the deadline (by then it has acted).
func askWait(run *state.Run) time.Duration {
	if run.Status == state.StatusStarting {
		return max(holderAnswerWait, deadlineOf(run).Remaining()+time.Second)
	}
	return holderAnswerWait
}

// GuardianDeadlineFlag is the guardian's flag for the final deadline, in
// CLOCK_MONOTONIC ns; guardianArgs encodes it.
const GuardianDeadlineFlag = "deadline-mono"

func (d Deadline) guardianArgs() []string {
	return []string{"--" + GuardianDeadlineFlag, strconv.FormatInt(d.Mono, 10)}
}

// systemdTimerArgs are systemd-run's timer flags for a run: fire
// systemdTimerDelay after its deadline, to systemdTimerAccuracy.
func systemdTimerArgs(run *state.Run) []string {
	after := deadlineOf(run).Remaining() + systemdTimerDelay
	return []string{"--on-active=" + strconv.FormatInt(after.Milliseconds(), 10) + "ms",
		"--timer-property=AccuracySec=" + strconv.FormatInt(systemdTimerAccuracy.Milliseconds(), 10) + "ms"}
}
