package chaos

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
)

// Bounds the checks use. Each is a guarantee from README.md or a bound on
// the suite's own measurement, never a tolerance for hostagent being late.
const (
	// thawBound: nothing may stay frozen longer than this past the deadline.
	thawBound = 250 * time.Millisecond
	// readSlack bounds how long after hostagent wrote a line the suite's
	// reader (blocked in read on the pipe) records it.
	readSlack = 50 * time.Millisecond
	// loadSlack: on a filesystem the suite's FITHAW probe found thawed, a
	// write may still come back this much later than thawBound on a loaded
	// machine (the writer's own wake-up); longer fails.
	loadSlack = time.Second
	// stillFrozenAfter bounds the wait for the writer after the probe; a
	// writer still blocked then makes the suite thaw every mount of the case.
	stillFrozenAfter = 2 * time.Second
	// clockSlack: a thaw command the suite started this long after the
	// printed (wall-clock) deadline reaches the holder after its monotonic
	// one; it covers the two clocks drifting apart during a hold.
	clockSlack = 5 * time.Millisecond
	// mysqlWriteWait bounds the commit that shows MySQL is unlocked.
	mysqlWriteWait = 5 * time.Second
)

// caseRun is one chaos case: its plan, what was injected, what was observed.
type caseRun struct {
	t    *testing.T
	w    *world
	seed uint64
	idx  int
	cat  string
	rng  *rand.Rand

	stateDir string
	timeout  time.Duration
	lock     string
	mounts   []string // every mount the case's freezes may touch (writers run on each)
	writers  map[string]*writer
	started  time.Time

	mu        sync.Mutex
	clients   []*client
	thaws     []thawObs
	stopped   []procRef
	notes     []string
	lockLost  map[string]time.Time // run id → when the suite killed its lock (connection or server)
	mysqlDown bool
	wg        sync.WaitGroup // scheduled faults and thaws

	failures []string
	over     bool          // the case's subtest has ended
	worst    time.Duration // worst writer lateness past a limit
	loadLate bool          // a lateness over thawBound was attributed to load (see checkFrozen)
}

// thawObs is a `hostagent thaw` the suite ran during the case.
type thawObs struct {
	runID string
	res   result
}

func (c *caseRun) failf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.failures = append(c.failures, msg)
	notes := strings.Join(c.notes, "; ")
	over := c.over
	c.mu.Unlock()
	if over { // a straggling goroutine: the subtest is over, t must not be used
		fmt.Fprintf(os.Stderr, "chaos case %d (%s) after its end: %s\n", c.idx, c.cat, msg)
		return
	}
	c.t.Errorf("chaos case %d (%s), reproduce with CHAOS_SEED=%d CHAOS_ONLY=%d: %s\n\tinjected: %s",
		c.idx, c.cat, c.seed, c.idx, msg, notes)
}

func (c *caseRun) note(format string, args ...any) {
	msg := fmt.Sprintf("+%dms ", time.Since(c.started).Milliseconds()) + fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.notes = append(c.notes, msg)
	c.mu.Unlock()
}

// dur is a random duration in [lo, hi].
func (c *caseRun) dur(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(c.rng.Int64N(int64(hi-lo)+1))
}

func (c *caseRun) chance(p float64) bool { return c.rng.Float64() < p }

// at runs fn at t (or now if t passed) in a goroutine the case waits for.
func (c *caseRun) at(t time.Time, fn func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		time.Sleep(time.Until(t))
		fn()
	}()
}

// runID names the case's n-th freeze.
func (c *caseRun) runID(n int) string { return fmt.Sprintf("chaos-%d-%d-%d", c.seed%100000, c.idx, n) }

// pickMounts returns xfs, ext4 or both.
func (c *caseRun) pickMounts() []string {
	switch c.rng.IntN(3) {
	case 0:
		return []string{c.w.xfs.Mount}
	case 1:
		return []string{c.w.ext4.Mount}
	}
	return []string{c.w.xfs.Mount, c.w.ext4.Mount}
}

// pickLock returns none half the time, else a MySQL lock mode.
func (c *caseRun) pickLock(mysqlOnly bool) string {
	if !mysqlOnly && c.chance(0.5) {
		return contract.LockNone
	}
	if c.chance(0.5) {
		return contract.LockFTWRL
	}
	return contract.LockBackupStage
}

// freeze starts `hostagent freeze` of mounts as the case's n-th run.
func (c *caseRun) freeze(n int, mounts []string) *client {
	args := []string{"freeze", "--state-dir", c.stateDir, "--run-id", c.runID(n),
		"--timeout", c.timeout.String(), "--mysql-lock", c.lock}
	for _, m := range mounts {
		args = append(args, "--mount", m)
	}
	if c.lock != contract.LockNone {
		// Shorter than the shortest timeout: the lock wait counts against the deadline.
		args = append(args, "--mysql-socket", c.w.socket(), "--lock-wait", "500ms")
	}
	cl, err := startAgent(c.stateDir, args...)
	if err != nil {
		c.failf("start freeze: %v", err)
		return nil
	}
	c.mu.Lock()
	c.clients = append(c.clients, cl)
	c.mu.Unlock()
	c.note("freeze %s started (pid %d, mounts %v, lock %s, timeout %v)", c.runID(n), cl.ref.PID, mounts, c.lock, c.timeout)
	return cl
}

// thaw runs `hostagent thaw` for runID now and records the outcome.
func (c *caseRun) thaw(runID string) {
	res := runAgent(c.stateDir, 30*time.Second, "thaw", "--state-dir", c.stateDir, "--run-id", runID)
	c.mu.Lock()
	c.thaws = append(c.thaws, thawObs{runID: runID, res: res})
	c.mu.Unlock()
	c.note("thaw %s started +%dms: exit %d", runID, res.started.Sub(c.started).Milliseconds(), res.code)
}

// maybeThaw sends thaw at a random moment in [from, until] with probability p.
func (c *caseRun) maybeThaw(p float64, runID string, from, until time.Time) {
	if !c.chance(p) {
		return
	}
	when := from.Add(c.dur(0, max(0, until.Sub(from))))
	c.at(when, func() { c.thaw(runID) })
}

// stop SIGSTOPs p and schedules its SIGCONT at cont.
func (c *caseRun) stop(what string, p procRef, cont time.Time) {
	if err := p.signal(syscall.SIGSTOP); err != nil {
		c.note("SIGSTOP %s: %v", what, err)
		return
	}
	c.mu.Lock()
	c.stopped = append(c.stopped, p)
	c.mu.Unlock()
	c.note("SIGSTOP %s (pid %d), SIGCONT at +%dms", what, p.PID, cont.Sub(c.started).Milliseconds())
	c.at(cont, func() {
		if p.alive() {
			_ = syscall.Kill(p.PID, syscall.SIGCONT)
			c.note("SIGCONT %s (pid %d)", what, p.PID)
		}
	})
}

// kill SIGKILLs p.
func (c *caseRun) kill(what string, p procRef) {
	if err := p.signal(syscall.SIGKILL); err != nil {
		c.note("SIGKILL %s: %v", what, err)
		return
	}
	c.note("SIGKILL %s (pid %d)", what, p.PID)
}

// recordOf reads the run's record (active or finished); nil if none is readable.
func (c *caseRun) recordOf(runID string) *record {
	top, done, _ := readRecords(c.stateDir)
	for _, r := range append(top, done...) {
		if r.RunID == runID {
			return r
		}
	}
	return nil
}

// procFromState polls the state dir until the run records the role's process
// (holder or guardian), at most until limit.
func (c *caseRun) procFromState(cl *client, runID, role string, limit time.Time) (procRef, bool) {
	for time.Now().Before(limit) {
		r := c.recordOf(runID)
		select {
		case <-cl.exited:
			if r == nil || !r.active() {
				return procRef{}, false // the run is over (or never began)
			}
		default:
		}
		if r != nil {
			p := r.Holder
			if role == "guardian" {
				p = r.Guardian
			}
			if p.PID != 0 && isAgent(p.PID) {
				return p, true
			}
		}
		time.Sleep(time.Millisecond)
	}
	return procRef{}, false
}

// reportLimit is how long a freeze may take to report: its timeout plus the
// client's own answer slack (README: it returns as soon as everything is held).
func (c *caseRun) reportLimit(cl *client) time.Time { return cl.spawned.Add(c.timeout + 3*time.Second) }

// newCase prepares case idx of category cat: its own state dir and random plan basics.
func newCase(t *testing.T, w *world, seed uint64, idx int, cat string) *caseRun {
	dir, err := os.MkdirTemp("", "qc")
	if err != nil {
		t.Fatal(err)
	}
	c := &caseRun{t: t, w: w, seed: seed, idx: idx, cat: cat,
		rng:      rand.New(rand.NewPCG(seed, uint64(idx)+1)),
		stateDir: filepath.Join(dir, "s"), writers: map[string]*writer{}, lockLost: map[string]time.Time{},
		started: time.Now()}
	w.addStateDir(c.stateDir)
	c.timeout = time.Second + time.Duration(c.rng.IntN(9))*250*time.Millisecond
	return c
}

// startWriters starts one blocked-writer probe per mount of the case.
func (c *caseRun) startWriters(mounts ...string) {
	for _, m := range mounts {
		if _, ok := c.writers[m]; ok {
			continue
		}
		c.mounts = append(c.mounts, m)
		c.writers[m] = startWriter(m)
	}
	sort.Strings(c.mounts)
}

// end marks the case over: from now on failures are only counted.
func (c *caseRun) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.over = true
}
