package chaos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/test/fixture"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

// world is what the cases share: a loop XFS (holding mariadbd's datadir, so
// a freeze really stalls the server), a loop ext4, the server, and every
// state dir and mount the suite made, for the paranoid cleanup.
type world struct {
	t    *testing.T
	root string // temp dir holding the images
	xfs  *fixture.LoopFS
	ext4 *fixture.LoopFS

	teardownOnce sync.Once

	mu        sync.Mutex
	db        *mariadb.Server
	pool      *sql.DB
	stateDirs []string       // every case's state dir: their holders/guardians are ours
	ownMounts []string       // every mount the suite made (the only paths it ever thaws)
	cleanups  []func() error // extra per-case resources (stacked mounts, tmpfs) still open
}

func newWorld(t *testing.T) *world {
	t.Helper()
	fixture.RequireLoopFS(t, "xfs")
	fixture.RequireLoopFS(t, "ext4")
	fixture.SkipUnlessMariaDB(t)
	root, err := os.MkdirTemp("", "qchaos")
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, root: root}
	t.Cleanup(w.teardown)
	for _, fs := range []struct {
		dst    **fixture.LoopFS
		fstype string
		mb     int
	}{{&w.xfs, "xfs", 300}, {&w.ext4, "ext4", 64}} {
		dir := filepath.Join(root, fs.fstype)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		l, err := fixture.NewLoopFS(dir, fs.fstype, fs.mb)
		if err != nil {
			t.Fatalf("loop %s: %v", fs.fstype, err)
		}
		*fs.dst = l
		w.addMount(l.Mount)
	}
	if err := w.startMariaDB(); err != nil {
		t.Fatal(err)
	}
	return w
}

// teardown releases everything, once: rescue (thaw, kill), stop mariadbd
// (before the unmounts: its datadir is on the XFS), unmount and detach the
// loop filesystems, remove the temp dir. Called by t.Cleanup, and by the
// signal and deadline handlers, which exit without running cleanups.
func (w *world) teardown() {
	w.teardownOnce.Do(func() {
		w.rescue()
		w.stopMariaDB()
		for _, l := range []*fixture.LoopFS{w.ext4, w.xfs} {
			if l != nil {
				if err := l.Close(); err != nil {
					fmt.Fprintf(os.Stderr, "chaos: cleanup %s: %v\n", l.Mount, err)
				}
			}
		}
		os.RemoveAll(w.root)
		w.mu.Lock()
		dirs := w.stateDirs
		w.mu.Unlock()
		for _, d := range dirs { // a case cut short leaves its state dir
			os.RemoveAll(filepath.Dir(d))
		}
	})
}

func (w *world) addMount(p string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ownMounts = append(w.ownMounts, p)
}

func (w *world) addStateDir(p string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stateDirs = append(w.stateDirs, p)
}

func (w *world) startMariaDB() error {
	m, err := mariadb.Start(mariadb.Options{DataDir: filepath.Join(w.xfs.Mount, "data"), StartTimeout: 60 * time.Second})
	if err != nil {
		return fmt.Errorf("start mariadb: %w", err)
	}
	pool, err := m.DB()
	if err != nil {
		m.Stop()
		return err
	}
	pool.SetMaxOpenConns(4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS chaos",
		"CREATE TABLE IF NOT EXISTS chaos.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB",
	} {
		if _, err := pool.ExecContext(ctx, q); err != nil {
			pool.Close()
			m.Stop()
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	w.mu.Lock()
	w.db, w.pool = m, pool
	w.mu.Unlock()
	return nil
}

// stopMariaDB stops the server by its PID (the fixture's bounded stop).
func (w *world) stopMariaDB() {
	w.mu.Lock()
	m, pool := w.db, w.pool
	w.db, w.pool = nil, nil
	w.mu.Unlock()
	if pool != nil {
		pool.Close()
	}
	if m != nil {
		if err := m.Stop(); err != nil {
			w.t.Logf("stop mariadb: %v", err)
		}
	}
}

// killMariaDB SIGKILLs the server (by PID) and waits for it to be reaped.
func (w *world) killMariaDB() error {
	w.mu.Lock()
	m := w.db
	w.mu.Unlock()
	if m == nil {
		return fmt.Errorf("no mariadbd running")
	}
	if err := syscall.Kill(m.PID, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill mariadbd %d: %w", m.PID, err)
	}
	select {
	case <-m.Exited():
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("mariadbd %d not reaped 10s after SIGKILL", m.PID)
	}
}

// restartMariaDB replaces a dead (or wedged) server with a fresh one on the same datadir.
func (w *world) restartMariaDB() error {
	w.stopMariaDB()
	return w.startMariaDB()
}

func (w *world) socket() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.db == nil {
		return ""
	}
	return w.db.Socket
}

func (w *world) sql() *sql.DB {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pool
}

// rescue ends everything the suite may have left behind, whatever state it is
// in: SIGCONT+SIGKILL every holder/guardian recorded in its state dirs, thaw
// every mount it made (FITHAW by path), release per-case resources. Bounded:
// a thaw that blocks in the kernel is abandoned after a few seconds.
func (w *world) rescue() {
	w.mu.Lock()
	dirs := append([]string(nil), w.stateDirs...)
	mounts := append([]string(nil), w.ownMounts...)
	w.mu.Unlock()
	for _, d := range dirs {
		killRecorded(d)
	}
	thawPaths(mounts, 3*time.Second)
	if err := w.releaseCase(); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: release case resources: %v\n", err)
	}
}

// killRecorded SIGKILLs every live holder/guardian/client a state dir names.
func killRecorded(dir string) {
	top, done, _ := readRecords(dir)
	for _, r := range append(top, done...) {
		for _, p := range []procRef{r.Holder, r.Guardian, r.Client} {
			if p.alive() && isAgent(p.PID) {
				_ = syscall.Kill(p.PID, syscall.SIGCONT)
				_ = syscall.Kill(p.PID, syscall.SIGKILL)
			}
		}
	}
}

// fithaw issues FITHAW on path; it reports whether the filesystem was frozen.
func fithaw(path string) (bool, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), 0xC0045878, 0)
	switch errno {
	case 0:
		return true, nil
	case unix.EINVAL:
		return false, nil
	}
	return false, errno
}

// thawPaths thaws each path in order, each in its own goroutine: a FITHAW
// stuck behind a kernel deadlock must not stall the others beyond wait.
// It returns the paths that were frozen.
func thawPaths(paths []string, wait time.Duration) []string {
	var thawed []string
	for _, p := range paths {
		done := make(chan bool, 1)
		go func() {
			was, _ := fithaw(p)
			done <- was
		}()
		select {
		case was := <-done:
			if was {
				thawed = append(thawed, p)
			}
		case <-time.After(wait):
		}
	}
	return thawed
}

// addCleanup registers a case resource that the world releases (after the
// case, or in rescue if the test dies first).
func (w *world) addCleanup(fn func() error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cleanups = append(w.cleanups, fn)
}

// releaseCase runs and forgets the registered case resources, newest first,
// and returns what went wrong.
func (w *world) releaseCase() error {
	w.mu.Lock()
	cleanups := w.cleanups
	w.cleanups = nil
	w.mu.Unlock()
	var errs []error
	for i := len(cleanups) - 1; i >= 0; i-- {
		errs = append(errs, cleanups[i]())
	}
	return errors.Join(errs...)
}

// removeMounts forgets mounts the suite is about to unmount: their paths
// must never be thawed again (they would name the parent filesystem).
func (w *world) removeMounts(paths ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var keep []string
	for _, m := range w.ownMounts {
		drop := false
		for _, p := range paths {
			drop = drop || m == p
		}
		if !drop {
			keep = append(keep, m)
		}
	}
	w.ownMounts = keep
}
