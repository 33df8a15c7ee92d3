package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/fixture"
)

// unreadableState: while a run holds, its record becomes unreadable
// (garbage, as a torn or foreign write would leave it). Then a second freeze
// of the same mounts must still be refused (never two holds), and/or the
// holder dies: the guardian must still thaw at the deadline.
func (c *caseRun) unreadableState() {
	rep := c.beginHeld(false)
	if rep == nil {
		return
	}
	time.Sleep(c.dur(0, time.Until(rep.Deadline)/3))
	file := filepath.Join(c.stateDir, rep.RunID+".json")
	data, err := os.ReadFile(file)
	if err != nil {
		c.note("read record: %v", err)
		return
	}
	// Same file, torn in the middle: not JSON any more.
	if err := os.WriteFile(file, data[:len(data)/2], 0o600); err != nil {
		c.note("tear record: %v", err)
		return
	}
	c.note("tore %s at byte %d", file, len(data)/2)
	variant := c.rng.IntN(3)
	if variant != 1 {
		var mounts []string
		for _, m := range rep.Mounts {
			mounts = append(mounts, m.Path)
		}
		second := c.freeze(1, mounts[:1+c.rng.IntN(len(mounts))])
		if second != nil {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				second.wait(c.reportLimit(second))
				if second.code != contract.ExitBusy {
					c.failf("second freeze of %v, started while run %s held them (its record unreadable), exited %d, want 3 (busy): the busy check missed the held run",
						second.mountArgs(), rep.RunID, second.code)
				}
			}()
		}
	}
	if variant != 0 {
		if p, ok := refOf(rep.HolderPID); ok {
			c.kill("holder", p)
		}
	}
	c.maybeThaw(0.3, rep.RunID, time.Now(), rep.Deadline.Add(500*time.Millisecond))
}

// fullStateDir: the state dir is a tiny tmpfs of the suite's own (a few
// inodes, a few pages, partly filled), so some state write of the run fails:
// the reservation, a holder update, the log, the socket, the thaw record.
func (c *caseRun) fullStateDir() {
	if err := os.MkdirAll(c.stateDir, 0o700); err != nil {
		c.failf("mkdir state dir: %v", err)
		return
	}
	inodes, pages := 3+c.rng.IntN(8), 1+c.rng.IntN(6)
	opts := fmt.Sprintf("size=%dk,nr_inodes=%d,mode=0700", pages*4, inodes)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "chaos-state", c.stateDir).CombinedOutput(); err != nil {
		c.failf("mount tmpfs %s: %v: %s", opts, err, out)
		return
	}
	dir := c.stateDir
	c.w.addCleanup(func() error { return unmount(dir) })
	filler := c.rng.IntN(pages * 4096)
	if filler > 0 {
		_ = os.WriteFile(filepath.Join(c.stateDir, "filler"), make([]byte, filler), 0o600)
	}
	c.note("state dir tmpfs %s, %d bytes filled", opts, filler)
	cl := c.begin(false)
	if cl == nil {
		return
	}
	if c.chance(0.3) {
		if p, deadline, ok := c.target(cl, "holder"); ok {
			c.kill("holder", p)
			c.maybeThaw(0.5, c.runID(0), time.Now(), deadline.Add(500*time.Millisecond))
		}
		return
	}
	c.maybeThaw(0.5, c.runID(0), time.Now().Add(50*time.Millisecond), cl.spawned.Add(c.timeout+500*time.Millisecond))
}

// stacked: an outer loop XFS B and an inner loop filesystem whose image
// lives on B, frozen together after unsynced data went to the inner one.
// Freezing B first and then syncing the inner one can deadlock in the
// kernel (the inner loop device writes to a file on frozen B): a bounded
// timer of the suite FITHAWs both by path after the deadline + 5 s whatever
// happens.
func (c *caseRun) stacked() {
	st, err := newStack(c.w.root, []string{"xfs", "ext4"}[c.rng.IntN(2)])
	if err != nil {
		c.failf("%v", err)
		return
	}
	c.w.addMount(st.outer.Mount)
	c.w.addMount(st.inner.Mount)
	c.w.addCleanup(func() error {
		c.w.removeMounts(st.outer.Mount, st.inner.Mount)
		return st.close()
	})
	// Unsynced data on the inner filesystem: its freeze must write it out,
	// through the inner loop device, into the image file on B.
	if err := os.WriteFile(filepath.Join(st.inner.Mount, "unsynced"), make([]byte, 8<<20), 0o600); err != nil {
		c.failf("write unsynced data: %v", err)
		return
	}
	c.lock = contract.LockNone
	c.startWriters(st.outer.Mount, st.inner.Mount)
	c.started = time.Now()
	cl := c.freeze(0, []string{st.outer.Mount, st.inner.Mount})
	if cl == nil {
		return
	}
	rescueAt := cl.spawned.Add(c.timeout + time.Second + 5*time.Second)
	c.note("stacked: outer xfs %s, inner %s %s (image on the outer); external thaw at +%dms",
		st.outer.Mount, st.inner.FSType, st.inner.Mount, rescueAt.Sub(c.started).Milliseconds())
	go st.rescueAt(rescueAt, func(was []string) { c.note("external thaw (deadline + 5 s) found frozen: %v", was) })
	c.maybeThaw(0.3, c.runID(0), time.Now().Add(50*time.Millisecond), cl.spawned.Add(c.timeout))
}

// stack is an outer loop XFS with an inner loop filesystem on an image file
// stored on it, mounted below it.
type stack struct {
	outer, inner *fixture.LoopFS
	mu           sync.Mutex // held by a rescue thaw; close waits for it
	released     chan struct{}
}

func newStack(root, innerType string) (*stack, error) {
	dir, err := os.MkdirTemp(root, "stack")
	if err != nil {
		return nil, err
	}
	outer, err := fixture.NewLoopFS(dir, "xfs", 300)
	if err != nil {
		return nil, fmt.Errorf("outer loop xfs: %w", err)
	}
	innerDir := filepath.Join(outer.Mount, "inner")
	var inner *fixture.LoopFS
	if err = os.Mkdir(innerDir, 0o755); err == nil {
		inner, err = fixture.NewLoopFS(innerDir, innerType, 64)
	}
	if err != nil {
		outer.Close()
		return nil, fmt.Errorf("inner loop %s on %s: %w", innerType, outer.Mount, err)
	}
	return &stack{outer: outer, inner: inner, released: make(chan struct{})}, nil
}

// rescueAt FITHAWs outer then inner by path at t and a few times after,
// unless the stack was closed (its paths are plain directories then).
// Not waited for by the case: it must run even if the case is stuck.
func (s *stack) rescueAt(t time.Time, found func([]string)) {
	select {
	case <-time.After(time.Until(t)):
	case <-s.released:
		return
	}
	for i := 0; i < 10; i++ {
		s.mu.Lock()
		select {
		case <-s.released:
			s.mu.Unlock()
			return
		default:
		}
		if was := thawPaths([]string{s.outer.Mount, s.inner.Mount}, 2*time.Second); len(was) > 0 {
			found(was)
		}
		s.mu.Unlock()
		time.Sleep(200 * time.Millisecond)
	}
}

// close thaws, unmounts and detaches inner, then outer.
func (s *stack) close() error {
	s.mu.Lock()
	close(s.released)
	s.mu.Unlock()
	thawPaths([]string{s.outer.Mount, s.inner.Mount}, 3*time.Second)
	return errors.Join(s.inner.Close(), s.outer.Close())
}

// unmount unmounts a mount the suite made (lazily if still busy).
func unmount(path string) error {
	var err error
	for i := 0; i < 5; i++ {
		var out []byte
		if out, err = exec.Command("umount", path).CombinedOutput(); err == nil {
			return nil
		}
		err = fmt.Errorf("umount %s: %v: %s", path, err, strings.TrimSpace(string(out)))
		time.Sleep(100 * time.Millisecond)
	}
	_ = exec.Command("umount", "-l", path).Run()
	return fmt.Errorf("%w (unmounted lazily)", err)
}
