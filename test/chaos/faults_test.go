package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/quiesce/quiesce/contract"
)

// category is one kind of fault; plan sets the case up, starts the
// freeze(s) and schedules the fault; finish (common) waits and checks.
type category struct {
	name string
	plan func(c *caseRun)
}

var categories = []category{
	{"kill-holder", func(c *caseRun) { c.procFault("holder", false) }},
	{"stop-holder", func(c *caseRun) { c.procFault("holder", true) }},
	{"kill-guardian", func(c *caseRun) { c.procFault("guardian", false) }},
	{"stop-guardian", func(c *caseRun) { c.procFault("guardian", true) }},
	{"kill-client", (*caseRun).killClient},
	{"stop-client", (*caseRun).stopClient},
	{"double", (*caseRun).doubleFault},
	{"conn-kill", (*caseRun).connKill},
	{"mariadbd-kill", (*caseRun).mariadbdKill},
	{"concurrent", (*caseRun).concurrent},
	{"thaw-race", (*caseRun).thawRace},
	{"unreadable-state", (*caseRun).unreadableState},
	{"full-statedir", (*caseRun).fullStateDir},
	{"stacked", (*caseRun).stacked},
}

// begin picks mounts and lock, starts the writers and the first freeze.
func (c *caseRun) begin(mysqlOnly bool) *client {
	c.lock = c.pickLock(mysqlOnly)
	mounts := c.pickMounts()
	c.startWriters(c.w.xfs.Mount, c.w.ext4.Mount)
	c.started = time.Now()
	return c.freeze(0, mounts)
}

// beginHeld begins (see begin) and waits for the first freeze's report; nil
// (noted) if there is none.
func (c *caseRun) beginHeld(mysqlOnly bool) *contract.FreezeReport {
	cl := c.begin(mysqlOnly)
	if cl == nil {
		return nil
	}
	rep, _, ok := cl.freezeReport(c.reportLimit(cl))
	if !ok {
		c.note("no FreezeReport")
		return nil
	}
	return rep
}

// target finds the role's process either early (as soon as the state dir
// names it: mid-lock, mid-freeze) or during the hold (after the report, at a
// random moment before the deadline). deadline is the printed one if known,
// else the latest possible.
func (c *caseRun) target(cl *client, role string) (p procRef, deadline time.Time, ok bool) {
	deadline = cl.spawned.Add(c.timeout + time.Second)
	if c.chance(0.4) {
		p, ok = c.procFromState(cl, c.runID(0), role, c.reportLimit(cl))
		time.Sleep(c.dur(0, 20*time.Millisecond))
		if rep, _, got := cl.freezeReport(time.Now()); got {
			deadline = rep.Deadline
		}
		c.note("early %s target found=%v", role, ok)
		return p, deadline, ok
	}
	rep, _, got := cl.freezeReport(c.reportLimit(cl))
	if !got {
		c.note("no FreezeReport to target the %s from", role)
		return procRef{}, deadline, false
	}
	time.Sleep(c.dur(0, time.Until(rep.Deadline)*9/10))
	pid := rep.HolderPID
	if role == "guardian" {
		pid = rep.GuardianPID
	}
	p, ok = refOf(pid)
	return p, rep.Deadline, ok
}

// procFault SIGKILLs or SIGSTOPs (SIGCONT later) the holder or guardian.
func (c *caseRun) procFault(role string, stop bool) {
	cl := c.begin(false)
	if cl == nil {
		return
	}
	p, deadline, ok := c.target(cl, role)
	if !ok {
		return
	}
	if stop {
		c.stop(role, p, time.Now().Add(c.dur(50*time.Millisecond, max(50*time.Millisecond, time.Until(deadline)+time.Second))))
	} else {
		c.kill(role, p)
	}
	c.maybeThaw(0.5, c.runID(0), time.Now(), deadline.Add(500*time.Millisecond))
}

// killClient SIGKILLs the freeze client (our child) mid-way.
func (c *caseRun) killClient() {
	cl := c.begin(false)
	if cl == nil {
		return
	}
	time.Sleep(c.dur(0, 90*time.Millisecond)) // a freeze is held after ~20-90 ms here
	c.kill("client", cl.ref)
	c.maybeThaw(0.5, c.runID(0), time.Now(), cl.spawned.Add(c.timeout+500*time.Millisecond))
}

// stopClient SIGSTOPs the client mid-way and lets it continue after the
// deadline: whatever it prints then must be true. Like the Lambda, the
// suite thaws as soon as a report arrives.
func (c *caseRun) stopClient() {
	cl := c.begin(false)
	if cl == nil {
		return
	}
	time.Sleep(c.dur(0, 90*time.Millisecond))
	c.stop("client", cl.ref, cl.spawned.Add(c.timeout+c.dur(300*time.Millisecond, 1300*time.Millisecond)))
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if _, _, ok := cl.freezeReport(cl.spawned.Add(2*c.timeout + 5*time.Second)); ok {
			c.thaw(c.runID(0))
		}
	}()
}

// doubleFault: two faults at once, always leaving one fail-safe layer alive.
func (c *caseRun) doubleFault() {
	cl := c.begin(false)
	if cl == nil {
		return
	}
	variant := c.rng.IntN(4)
	switch variant {
	case 0, 1: // holder killed (or stopped) together with the client
		p, deadline, ok := c.target(cl, "holder")
		if !ok {
			return
		}
		if variant == 0 {
			c.kill("holder", p)
		} else {
			c.stop("holder", p, time.Now().Add(c.dur(50*time.Millisecond, time.Until(deadline)+time.Second)))
		}
		c.kill("client", cl.ref)
		c.maybeThaw(0.5, c.runID(0), time.Now(), deadline.Add(500*time.Millisecond))
	case 2: // guardian and client killed: the holder's own timer must thaw
		p, deadline, ok := c.target(cl, "guardian")
		if !ok {
			return
		}
		c.kill("guardian", p)
		c.kill("client", cl.ref)
		c.maybeThaw(0.3, c.runID(0), time.Now(), deadline.Add(500*time.Millisecond))
	case 3: // holder killed while the guardian is stopped for a moment
		p, deadline, ok := c.target(cl, "holder")
		if !ok {
			return
		}
		g, _, gok := c.target(cl, "guardian")
		if gok {
			c.stop("guardian", g, time.Now().Add(c.dur(10*time.Millisecond, 100*time.Millisecond)))
		}
		c.kill("holder", p)
		c.maybeThaw(0.5, c.runID(0), time.Now(), deadline.Add(500*time.Millisecond))
	}
}

// connKill: KILL the lock's connection from a second connection during the hold.
func (c *caseRun) connKill() {
	rep := c.beginHeld(true)
	if rep == nil {
		return
	}
	time.Sleep(c.dur(0, time.Until(rep.Deadline)*6/10))
	db := c.w.sql()
	if db == nil {
		c.note("no mariadbd to send KILL to")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := db.ExecContext(ctx, fmt.Sprintf("KILL %d", rep.Lock.ConnectionID))
	cancel()
	killedAt := time.Now()
	if err != nil {
		c.note("KILL %d: %v", rep.Lock.ConnectionID, err)
	} else {
		c.note("KILL %d (the lock's connection)", rep.Lock.ConnectionID)
		if killedAt.Before(rep.Deadline.Add(-50 * time.Millisecond)) {
			c.lockLost[rep.RunID] = killedAt
		}
	}
	c.maybeThaw(0.6, rep.RunID, time.Now().Add(50*time.Millisecond), rep.Deadline.Add(500*time.Millisecond))
}

// mariadbdKill: SIGKILL the server (ours, by PID) during the hold.
func (c *caseRun) mariadbdKill() {
	rep := c.beginHeld(true)
	if rep == nil {
		return
	}
	time.Sleep(c.dur(0, time.Until(rep.Deadline)*6/10))
	c.mysqlDown = true
	if err := c.w.killMariaDB(); err != nil {
		c.note("kill mariadbd: %v", err)
		return
	}
	killedAt := time.Now()
	c.note("SIGKILL mariadbd")
	if killedAt.Before(rep.Deadline.Add(-50 * time.Millisecond)) {
		c.lockLost[rep.RunID] = killedAt
	}
	c.maybeThaw(0.6, rep.RunID, time.Now().Add(50*time.Millisecond), rep.Deadline.Add(500*time.Millisecond))
}

// concurrent: two freezes of overlapping mounts at once: exactly one holds,
// the other exits 3 (busy).
func (c *caseRun) concurrent() {
	c.lock = c.pickLock(false)
	c.startWriters(c.w.xfs.Mount, c.w.ext4.Mount)
	first := c.pickMounts()
	second := []string{first[c.rng.IntN(len(first))]}
	if c.chance(0.5) {
		second = []string{c.w.xfs.Mount, c.w.ext4.Mount}
	}
	c.started = time.Now()
	a := c.freeze(0, first)
	time.Sleep(c.dur(0, 5*time.Millisecond))
	b := c.freeze(1, second)
	if a == nil || b == nil {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		a.wait(c.reportLimit(a))
		b.wait(c.reportLimit(b))
		codes := []contract.ExitCode{a.code, b.code}
		if !(codes[0] == 0 && codes[1] == contract.ExitBusy) && !(codes[0] == contract.ExitBusy && codes[1] == 0) {
			c.failf("two freezes of overlapping mounts %v and %v at once exited %v: want one 0 (held) and one 3 (busy)", first, second, codes)
		}
		for n, cl := range []*client{a, b} {
			if rep, _, ok := cl.freezeReport(time.Now()); ok {
				c.maybeThaw(0.5, c.runID(n), time.Now(), rep.Deadline.Add(500*time.Millisecond))
			}
		}
	}()
}

// thawRace sends thaw within a few ms of the deadline, sometimes twice at
// once: whoever wins, the reports must say which (late or not) and agree
// with the exit codes.
func (c *caseRun) thawRace() {
	rep := c.beginHeld(false)
	if rep == nil {
		return
	}
	at := rep.Deadline.Add(c.dur(0, 80*time.Millisecond) - 40*time.Millisecond)
	c.at(at, func() { c.thaw(rep.RunID) })
	if c.chance(0.5) {
		c.at(at.Add(c.dur(0, 10*time.Millisecond)-5*time.Millisecond), func() { c.thaw(rep.RunID) })
	}
}
