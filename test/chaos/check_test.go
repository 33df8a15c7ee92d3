package chaos

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/quiesce/quiesce/contract"
)

// finish waits for the case to play out and checks every guarantee, with
// bounded waits, then leaves nothing behind (thawed, killed, MySQL up).
func (c *caseRun) finish() {
	c.waitClients()
	waited := make(chan struct{})
	go func() { c.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(c.timeout + 20*time.Second):
		c.failf("scheduled faults/thaws did not finish (a hostagent thaw hung?)")
	}
	c.checkFrozen()
	c.resumeStopped()
	c.checkProcesses()
	c.checkStateDir()
	c.checkMySQL()
	c.checkFreezeReports()
	c.checkThawReports()
	c.cleanup()
}

// waitClients waits for every freeze client; one that does not end in time
// (README: it returns as soon as everything is held, or fails) is a failure.
func (c *caseRun) waitClients() {
	for _, cl := range c.clients {
		limit := cl.spawned.Add(c.timeout + 15*time.Second)
		if !cl.wait(limit) {
			c.failf("%s (pid %d, %s) still running %v after it started", cl, cl.ref.PID, cl.ref.state(), time.Since(cl.spawned).Round(time.Millisecond))
			_ = syscall.Kill(cl.ref.PID, syscall.SIGCONT)
			_ = syscall.Kill(cl.ref.PID, syscall.SIGKILL)
			cl.wait(time.Now().Add(5 * time.Second))
		}
		_, stderr, _ := cl.output()
		c.note("%s exited %d (signaled %v) at +%dms: %s", firstArg(cl.args, "--run-id"), cl.code, cl.killed,
			cl.exitedAt().Sub(c.started).Milliseconds(), strings.TrimSpace(stderr))
	}
}

// firstArg is the value after flag in args.
func firstArg(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// limitOf is the instant after which nothing this client asked for may be
// frozen: the deadline of its hold (the printed one, else the recorded one,
// else the latest deadline the client could have set, its start + timeout +
// 1 s), and for a freeze that failed, its exit (README: failures undo what
// was done before exiting non-zero).
func (c *caseRun) limitOf(cl *client, runID string) time.Time {
	if rep, _, ok := cl.freezeReport(time.Now()); ok {
		return rep.Deadline
	}
	limit := cl.spawned.Add(c.timeout + time.Second)
	if r := c.recordOf(runID); r != nil && r.DeadlineFinal && r.Deadline.Before(limit) {
		limit = r.Deadline
	}
	if !cl.killed && cl.code != 0 && cl.exitedAt().Before(limit) {
		limit = cl.exitedAt()
	}
	return limit
}

// checkFrozen: nothing may be frozen past its limit + thawBound. The
// assertion is made by the kernel: at limit + thawBound the suite issues
// FITHAW on each mount, which succeeds only on a frozen filesystem (and then
// ends the freeze). The blocked writer gives the figure (how long after the
// limit a write got through); a writer stuck far longer than the bound on a
// filesystem the probe found thawed fails too (refrozen, or a stall beyond
// loadSlack), one stuck a little longer is counted as machine load.
func (c *caseRun) checkFrozen() {
	limits := c.mountLimits()
	order := slices.Clone(c.mounts) // outer before inner: a stacked freeze thaws outside-in
	sort.SliceStable(order, func(i, j int) bool { return limits[order[i]].Before(limits[order[j]]) })
	for _, m := range order {
		limit := limits[m]
		time.Sleep(time.Until(limit.Add(thawBound)))
		probed := time.Now()
		frozen := thawPaths([]string{m}, 3*time.Second)
		if len(frozen) > 0 {
			c.failf("%s still frozen %v past its limit %s (bound %v): the suite's FITHAW found it frozen (and thawed it)",
				m, probed.Sub(limit).Round(time.Millisecond), stamp(limit), thawBound)
		}
		c.checkWriter(m, limit, probed, len(frozen) > 0)
	}
}

// mountLimits is, per mount of the case, the latest limit of the freezes
// that asked for it (the case start for mounts no freeze asked for).
func (c *caseRun) mountLimits() map[string]time.Time {
	limits := map[string]time.Time{}
	for _, m := range c.mounts {
		limits[m] = c.started
	}
	for n, cl := range c.clients {
		limit := c.limitOf(cl, c.runID(n))
		for _, m := range cl.mountArgs() {
			if limit.After(limits[m]) {
				limits[m] = limit
			}
		}
	}
	return limits
}

// checkWriter reads the writer's figure for m after the probe.
func (c *caseRun) checkWriter(m string, limit, probed time.Time, probeThawed bool) {
	w := c.writers[m]
	ret, stuck, ok := w.waitStuckAfter(limit, time.Now().Add(stillFrozenAfter))
	if !ok {
		if err := w.failed(); err != nil {
			c.failf("writer on %s failed: %v", m, err)
			return
		}
		c.failf("%s: writer still blocked %v after the suite's FITHAW (blocked since %s); thawing every mount of the case",
			m, stillFrozenAfter, stamp(w.blockedSince()))
		thawPaths(c.mounts, 3*time.Second)
		if ret, _, ok = w.waitStuckAfter(limit, time.Now().Add(5*time.Second)); !ok {
			c.failf("%s: writer still blocked after the suite thawed every mount", m)
			return
		}
		stuck = ret.Sub(limit)
	}
	c.worst = max(c.worst, stuck)
	if probeThawed || stuck <= thawBound {
		return
	}
	// Over the bound by the writer's clock. Machine load, if the kernel or
	// hostagent's log shows the thaw in time and the writer followed soon.
	probeOnTime := probed.Sub(limit) <= thawBound+readSlack
	logged, found := c.lastLoggedThaw(m, limit.Add(thawBound))
	switch {
	case stuck <= thawBound+loadSlack && probeOnTime:
		c.loadLate = true
		c.note("writer on %s got through %v after the limit; the FITHAW probe %v after the limit found it thawed: machine load",
			m, stuck.Round(time.Millisecond), probed.Sub(limit).Round(time.Millisecond))
	case stuck <= thawBound+loadSlack && found && ret.Sub(logged) <= loadSlack:
		c.loadLate = true
		c.note("writer on %s got through %v after the limit, %v after hostagent logged its thaw: machine load",
			m, stuck.Round(time.Millisecond), ret.Sub(logged).Round(time.Millisecond))
	default:
		c.failf("%s frozen %v past its limit %s (bound %v): a write issued then returned at %s; hostagent's last logged thaw of it by the bound: %s; the suite's FITHAW probe ran at %s",
			m, stuck.Round(time.Millisecond), stamp(limit), thawBound, stamp(ret), stamp(logged), stamp(probed))
	}
}

// lastLoggedThaw finds the last "thawed" line for mount in the case's run
// logs at or before by (slog text lines carry millisecond times).
func (c *caseRun) lastLoggedThaw(mount string, by time.Time) (time.Time, bool) {
	var last time.Time
	for _, at := range c.loggedThaws(mount) {
		if !at.After(by) && at.After(last) {
			last = at
		}
	}
	return last, !last.IsZero()
}

// loggedThaws lists the times of the "thawed" lines for mount in the case's run logs.
func (c *caseRun) loggedThaws(mount string) []time.Time {
	logs, _ := filepath.Glob(filepath.Join(c.stateDir, "*.log"))
	var out []time.Time
	for _, l := range logs {
		f, err := os.Open(l)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, " msg=thawed ") || !strings.Contains(line, " mount="+mount+" ") {
				continue
			}
			ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
			if at, err := time.Parse(time.RFC3339Nano, ts); err == nil {
				out = append(out, at)
			}
		}
		f.Close()
	}
	return out
}

// resumeStopped SIGCONTs everything the suite stopped (if still alive).
func (c *caseRun) resumeStopped() {
	for _, p := range c.stopped {
		if p.alive() {
			_ = syscall.Kill(p.PID, syscall.SIGCONT)
		}
	}
}

// procs are every holder/guardian this case's runs had: from the printed
// reports and from the state dir's records.
func (c *caseRun) procs() map[int]procRef {
	out := map[int]procRef{}
	for _, cl := range c.clients {
		if rep, _, ok := cl.freezeReport(time.Now()); ok {
			for _, pid := range []int{rep.HolderPID, rep.GuardianPID} {
				if p, ok := refOf(pid); ok {
					out[pid] = p
				}
			}
		}
	}
	top, done, _ := readRecords(c.stateDir)
	for _, r := range append(top, done...) {
		for _, p := range []procRef{r.Holder, r.Guardian} {
			if p.PID != 0 {
				out[p.PID] = p
			}
		}
	}
	return out
}

// checkProcesses: once the limits have passed, no holder or guardian may
// be left (the guardian exits after its thaw, the holder is killed by it).
func (c *caseRun) checkProcesses() {
	var all []procRef
	for _, p := range c.procs() {
		all = append(all, p)
	}
	limit := time.Now().Add(2 * time.Second)
	for _, p := range waitDead(all, limit) {
		c.failf("pid %d (%s) still alive %v after the case's holds ended", p.PID, p.state(), 2*time.Second)
		_ = syscall.Kill(p.PID, syscall.SIGCONT)
		_ = syscall.Kill(p.PID, syscall.SIGKILL)
	}
	if live := waitDead(all, time.Now().Add(3*time.Second)); len(live) > 0 {
		c.failf("pids %v survive SIGKILL (stuck in the kernel?)", live)
	}
}

// checkStateDir runs `hostagent status` (which recovers stale runs first)
// and then requires: no run starting or held, no active record, no socket.
func (c *caseRun) checkStateDir() {
	res := runAgent(c.stateDir, 20*time.Second, "status", "--state-dir", c.stateDir)
	if res.err != nil || res.code != 0 {
		c.failf("hostagent status: exit %d, %v: %s %s", res.code, res.err, strings.TrimSpace(res.stdout), strings.TrimSpace(res.stderr))
	} else {
		var st contract.StatusReport
		if err := decodeOne(res.stdout, &st); err != nil {
			c.failf("hostagent status: %v", err)
		}
		for _, r := range st.Runs {
			if r.State == "starting" || r.State == "held" {
				c.failf("hostagent status still lists run %s as %s after every process ended", r.RunID, r.State)
			}
		}
	}
	top, _, errs := readRecords(c.stateDir)
	for _, r := range top {
		if r.active() {
			c.failf("active record left in the state dir: %s (status %s)", r.file, r.Status)
		}
	}
	for _, err := range errs {
		c.failf("unreadable record left in the state dir: %v", err)
	}
	socks, _ := filepath.Glob(filepath.Join(c.stateDir, "*.sock"))
	for _, s := range socks {
		c.failf("holder socket left in the state dir: %s", s)
	}
}

// checkMySQL: a write through another connection commits in bounded time.
// A server the case killed is restarted first.
func (c *caseRun) checkMySQL() {
	if c.mysqlDown {
		if err := c.w.restartMariaDB(); err != nil {
			c.failf("restart mariadbd after the case: %v", err)
			return
		}
	}
	db := c.w.sql()
	if db == nil {
		c.failf("no mariadbd to check (stopped by a teardown?)")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), mysqlWriteWait)
	defer cancel()
	start := time.Now()
	if _, err := db.ExecContext(ctx, "INSERT INTO chaos.t (v) VALUES (?)", c.idx); err != nil {
		c.failf("MySQL still locked: an INSERT did not commit within %v after the case: %v", mysqlWriteWait, err)
		// A fresh server for the next case: this one keeps a lock nobody releases.
		if err := c.w.restartMariaDB(); err != nil {
			c.failf("restart mariadbd: %v", err)
		}
		return
	}
	if took := time.Since(start); took > time.Second {
		c.note("INSERT after the case took %v", took.Round(time.Millisecond))
	}
}

// checkFreezeReports: exit codes as documented; a printed FreezeReport was
// true when printed (its deadline not passed, nothing thawed yet, the mounts
// asked for); a failure prints one ErrorReport carrying the same exit code.
func (c *caseRun) checkFreezeReports() {
	for n, cl := range c.clients {
		if cl.killed {
			continue // the suite killed it: no exit code to judge
		}
		stdout, stderr, at := cl.output()
		if cl.code < contract.ExitOK || cl.code > contract.ExitLockWait {
			c.failf("%s: exit %d is not a documented freeze exit code; stderr %q", cl, cl.code, stderr)
			continue
		}
		if cl.code != 0 {
			var er contract.ErrorReport
			if err := decodeOne(stdout, &er); err != nil {
				c.failf("freeze exit %d: %v", cl.code, err)
			} else if er.ExitCode != cl.code {
				c.failf("freeze exited %d but its ErrorReport says exit_code %d", cl.code, er.ExitCode)
			}
			continue
		}
		var rep contract.FreezeReport
		if err := decodeOne(stdout, &rep); err != nil {
			c.failf("freeze exit 0: %v", err)
			continue
		}
		c.checkOneFreezeReport(cl, c.runID(n), &rep, at)
	}
}

func (c *caseRun) checkOneFreezeReport(cl *client, runID string, rep *contract.FreezeReport, at time.Time) {
	if rep.RunID != runID {
		c.failf("FreezeReport run_id %q, asked for %q", rep.RunID, runID)
	}
	var got []string
	for _, m := range rep.Mounts {
		got = append(got, m.Path)
	}
	want := slices.Clone(cl.mountArgs())
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		c.failf("FreezeReport mounts %v, asked for %v", got, want)
	}
	if late := at.Sub(rep.Deadline); late > readSlack {
		c.failf("stale success: FreezeReport of %s printed %v after its deadline %s (the hold was no longer in force)",
			runID, late.Round(time.Millisecond), stamp(rep.Deadline))
	}
	if at.Before(rep.Deadline) {
		c.checkHeldWhenPrinted(runID, rep, at)
	}
	if r := c.recordOf(runID); r != nil && r.Thaw != nil && r.Thaw.ThawedAt.Before(at.Add(-readSlack)) {
		c.failf("FreezeReport of %s printed at %s, but the run was thawed (by %s) at %s before that",
			runID, stamp(at), r.Thaw.ThawedBy, stamp(r.Thaw.ThawedAt))
	}
}

// logSlack: hostagent logs a thaw right after its FITHAW; on a loaded
// machine the process may be descheduled in between for this long.
const logSlack = 500 * time.Millisecond

// checkHeldWhenPrinted: a FreezeReport says every mount is frozen. The first
// write the suite issued on each after reading the report must then stay
// blocked until something ended the hold: a thaw the suite sent, a thaw
// hostagent logged (less logSlack), or the deadline.
func (c *caseRun) checkHeldWhenPrinted(runID string, rep *contract.FreezeReport, at time.Time) {
	for _, m := range rep.Mounts {
		w, ok := c.writers[m.Path]
		if !ok {
			continue
		}
		op, ok := w.firstFrom(at)
		if !ok {
			continue // still blocked, or no write yet: nothing contradicts the report
		}
		end := rep.Deadline
		for _, th := range c.thaws {
			if th.runID == runID && th.res.started.Before(end) {
				end = th.res.started
			}
		}
		for _, t := range c.loggedThaws(m.Path) {
			if t.Add(-logSlack).Before(end) {
				end = t.Add(-logSlack)
			}
		}
		if op.ret.Before(end) && op.ret.Before(op.start.Add(thawBound)) {
			c.failf("FreezeReport of %s (read %s) says %s is frozen, but a write issued at %s returned at %s, before anything ended the hold (%s)",
				runID, stamp(at), m.Path, stamp(op.start), stamp(op.ret), stamp(end))
		}
	}
}

// checkThawReports: every thaw's exit code matches its report; a thaw sent
// after the deadline is never reported on time; a run whose lock the suite
// killed during the hold never reports an intact lock.
func (c *caseRun) checkThawReports() {
	for _, th := range c.thaws {
		if th.res.err != nil {
			c.failf("thaw %s: %v", th.runID, th.res.err)
			continue
		}
		if th.res.code == contract.ExitUsage || (th.res.code == contract.ExitFailed && !strings.Contains(th.res.stdout, `"thawed_by"`)) {
			var er contract.ErrorReport
			if err := decodeOne(th.res.stdout, &er); err != nil || er.ExitCode != th.res.code {
				c.failf("thaw %s exit %d without a matching ErrorReport: %v %q", th.runID, th.res.code, err, th.res.stdout)
			}
			continue
		}
		var rep contract.ThawReport
		if err := decodeOne(th.res.stdout, &rep); err != nil {
			c.failf("thaw %s exit %d: %v", th.runID, th.res.code, err)
			continue
		}
		c.checkOneThaw(th, &rep)
	}
	for runID, at := range c.lockLost {
		if r := c.recordOf(runID); r != nil && r.Thaw != nil {
			c.checkLockLoss("recorded ThawReport of "+runID, r.Thaw, at)
		}
	}
}

func (c *caseRun) checkOneThaw(th thawObs, rep *contract.ThawReport) {
	notThawed := false
	for _, m := range rep.Mounts {
		notThawed = notThawed || !m.Thawed
	}
	// Exit 1 (failed) may come with any report; 0 and 4 must match it.
	switch code := th.res.code; {
	case notThawed && code != contract.ExitFailed:
		c.failf("thaw %s exited %d although its report lists a mount not thawed: %+v", th.runID, code, rep.Mounts)
	case !notThawed && rep.Late && code != contract.ExitLate && code != contract.ExitFailed:
		c.failf("thaw %s exited %d but its report says late (thawed_by=%s): want exit 4", th.runID, code, rep.ThawedBy)
	case !notThawed && !rep.Late && code != contract.ExitOK && code != contract.ExitFailed:
		c.failf("thaw %s exited %d but its report says thawed on time", th.runID, code)
	}
	switch rep.ThawedBy {
	case contract.ThawedByCommand, contract.ThawedByDeadline, contract.ThawedByRecovery:
	default:
		c.failf("thaw %s: thawed_by %q is not documented", th.runID, rep.ThawedBy)
	}
	if d, ok := c.printedDeadline(th.runID); ok && !rep.Late && th.res.started.After(d.Add(clockSlack)) {
		c.failf("thaw %s sent %v after the deadline reported on time (late=false, thawed_by=%s)",
			th.runID, th.res.started.Sub(d).Round(time.Millisecond), rep.ThawedBy)
	}
	if at, ok := c.lockLost[th.runID]; ok && at.Before(th.res.started) {
		c.checkLockLoss("thaw "+th.runID, rep, at)
	}
}

// checkLockLoss: the suite killed the lock at `at`, during the hold: the
// report must say so (README: lock_lost — the snapshot is not application-consistent).
func (c *caseRun) checkLockLoss(what string, rep *contract.ThawReport, at time.Time) {
	if rep.LockLost == nil {
		c.failf("%s says mysql_unlocked=%v and no lock_lost, but the lock was killed at %s, during the hold (a lie: writes could commit while \"held\")",
			what, rep.MySQLUnlocked, stamp(at))
	}
}

func (c *caseRun) printedDeadline(runID string) (time.Time, bool) {
	for n, cl := range c.clients {
		if c.runID(n) != runID {
			continue
		}
		if rep, _, ok := cl.freezeReport(time.Now()); ok {
			return rep.Deadline, true
		}
	}
	return time.Time{}, false
}

// cleanup leaves nothing of the case: writers stopped (after a thaw, if one
// is still blocked), processes killed, case resources released.
func (c *caseRun) cleanup() {
	killRecorded(c.stateDir)
	for _, m := range c.mounts {
		if !c.writers[m].halt(2 * time.Second) {
			thawPaths(c.mounts, 3*time.Second)
			if !c.writers[m].halt(5 * time.Second) {
				c.failf("writer on %s still blocked after a thaw at cleanup", m)
			}
		}
	}
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("15:04:05.000")
}
