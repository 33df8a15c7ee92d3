package chaos

import (
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
	cl := c.begin(false)
	if cl == nil {
		return
	}
	rep, _, ok := cl.freezeReport(c.reportLimit(cl))
	if !ok {
		c.note("no FreezeReport")
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
	c.w.addCleanup(func() { unmount(dir) })
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
	dir, err := os.MkdirTemp(c.w.root, "stack")
	if err != nil {
		c.failf("%v", err)
		return
	}
	outer, err := fixture.NewLoopFS(dir, "xfs", 300)
	if err != nil {
		c.failf("outer loop xfs: %v", err)
		return
	}
	innerType := []string{"xfs", "ext4"}[c.rng.IntN(2)]
	innerDir := filepath.Join(outer.Mount, "inner")
	var inner *fixture.LoopFS
	if err = os.Mkdir(innerDir, 0o755); err == nil {
		inner, err = fixture.NewLoopFS(innerDir, innerType, 64)
	}
	if err != nil {
		outer.Close()
		c.failf("inner loop %s on %s: %v", innerType, outer.Mount, err)
		return
	}
	c.w.addMount(outer.Mount)
	c.w.addMount(inner.Mount)
	released := make(chan struct{})
	var rescueMu sync.Mutex // the unmount waits for a rescue thaw in progress
	c.w.addCleanup(func() {
		rescueMu.Lock()
		close(released)
		rescueMu.Unlock()
		thawPaths([]string{outer.Mount, inner.Mount}, 3*time.Second)
		c.w.removeMounts(outer.Mount, inner.Mount)
		if err := inner.Close(); err != nil {
			c.t.Errorf("close inner loop: %v", err)
		}
		if err := outer.Close(); err != nil {
			c.t.Errorf("close outer loop: %v", err)
		}
	})
	// Unsynced data on the inner filesystem: its freeze must write it out,
	// through the inner loop device, into the image file on B.
	if err := os.WriteFile(filepath.Join(inner.Mount, "unsynced"), make([]byte, 8<<20), 0o600); err != nil {
		c.failf("write unsynced data: %v", err)
		return
	}
	c.lock = contract.LockNone
	c.startWriters(outer.Mount, inner.Mount)
	c.started = time.Now()
	cl := c.freeze(0, []string{outer.Mount, inner.Mount})
	if cl == nil {
		return
	}
	rescueAt := cl.spawned.Add(c.timeout + time.Second + 5*time.Second)
	c.note("stacked: outer xfs %s, inner %s %s (image on the outer); external thaw at +%dms",
		outer.Mount, innerType, inner.Mount, rescueAt.Sub(c.started).Milliseconds())
	go func() { // not waited for: it must run even if the case is stuck
		select {
		case <-time.After(time.Until(rescueAt)):
		case <-released: // unmounted already: the paths are plain directories now
			return
		}
		for i := 0; i < 10; i++ {
			rescueMu.Lock()
			select {
			case <-released:
				rescueMu.Unlock()
				return
			default:
			}
			if was := thawPaths([]string{outer.Mount, inner.Mount}, 2*time.Second); len(was) > 0 {
				c.note("external thaw (deadline + 5 s) found frozen: %s", strings.Join(was, ", "))
			}
			rescueMu.Unlock()
			time.Sleep(200 * time.Millisecond)
		}
	}()
	c.maybeThaw(0.3, c.runID(0), time.Now().Add(50*time.Millisecond), cl.spawned.Add(c.timeout))
}

// unmount unmounts a mount the suite made (lazily if still busy).
func unmount(path string) {
	for i := 0; i < 5; i++ {
		if exec.Command("umount", path).Run() == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = exec.Command("umount", "-l", path).Run()
}
