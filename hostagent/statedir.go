package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/state"
	"github.com/quiesce/quiesce/internal/agenterr"
)

// cmdProbeWrite is the hidden helper that shows a directory's filesystem takes writes.
const cmdProbeWrite = "__probe-write"

// stateProbeWait bounds the write probe; a live filesystem answers in milliseconds.
const stateProbeWait = time.Second

// openStateDir opens the state dir once its filesystem is known to take
// writes. On a frozen filesystem (frozen by someone else: hostagent refuses
// to freeze the state dir's own) every write sleeps uninterruptibly until
// the thaw — even SIGKILL waits — so a command that simply wrote its state
// would hang, with its caller's stdout pipe open, for as long as that lasts.
// The write is tried in a detached child instead: if it does not finish in
// time the command refuses (busy) and the child finishes after the thaw.
// tmpfs and ramfs (production's /run) cannot be frozen and skip the probe.
func openStateDir(path string) (*state.Dir, error) {
	if err := checkStateDir(path); err != nil {
		return nil, err
	}
	if err := stateDirWritable(path); err != nil {
		return nil, err
	}
	return state.Open(path)
}

// maxStateDirLen keeps <dir>/<16 hex>.sock, the holder's socket, within
// sun_path's 108 bytes (the same bound state.Open enforces).
const maxStateDirLen = 107 - 1 - 16 - len(".sock")

// checkStateDir refuses, as bad usage naming it, a state dir that can never
// work: relative or unclean, too long for the holder's socket, an existing
// non-directory or a path below one, a directory someone else owns. It runs
// before anything is locked or frozen and creates nothing.
func checkStateDir(path string) error {
	name := "state dir " + agenterr.Quote(path) + " (--state-dir or $" + state.EnvDir + ")"
	switch {
	case !filepath.IsAbs(path) || filepath.Clean(path) != path:
		return agenterr.Usagef("%s: must be an absolute clean path", name)
	case len(path) > maxStateDirLen:
		return agenterr.Usagef("%s: longer than %d bytes (the holder's unix socket must fit in it)", name, maxStateDirLen)
	}
	for p := path; ; p = filepath.Dir(p) {
		stat := os.Stat // parents may be symlinks (/var/run); the dir itself must not be
		if p == path {
			stat = os.Lstat
		}
		st, err := stat(p)
		switch {
		case err == nil && p == path && st.Mode()&fs.ModeSymlink != 0:
			return agenterr.Usagef("%s: is a symbolic link; give the directory itself", name)
		case err == nil && !st.IsDir():
			return agenterr.Usagef("%s: %s is not a directory", name, p)
		case err == nil && p == path:
			if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
				return agenterr.Usagef("%s: owned by uid %d, not by this user (uid %d)", name, sys.Uid, os.Geteuid())
			}
			return nil
		case err == nil:
			return nil // created below an existing directory
		case !errors.Is(err, fs.ErrNotExist):
			return agenterr.Usagef("%s: %v", name, err)
		case p == "/":
			return nil
		}
	}
}

func stateDirWritable(path string) error {
	if !filepath.IsAbs(path) {
		return nil // state.Open refuses it with its own message
	}
	dir := filepath.Clean(path)
	for { // the dir may not exist yet: probe where it will be created
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			break
		}
		if dir == "/" {
			return nil
		}
		dir = filepath.Dir(dir)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err == nil && (sfs.Type == unix.TMPFS_MAGIC || sfs.Type == unix.RAMFS_MAGIC) {
		return nil
	}
	cmd := exec.Command("/proc/self/exe", cmdProbeWrite, dir)
	cmd.Dir = "/"
	cmd.Env = []string{}
	// Detached like the holder: if it blocks, it must not keep the caller's pipes open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("state dir %s: start write probe: %w", path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	err, finished := awaitProbe(done, stateProbeWait)
	if !finished {
		return fmt.Errorf("state dir %s: its filesystem took no write within %v (frozen?); refusing: %w",
			path, stateProbeWait, contract.ErrBusy)
	}
	if err != nil {
		return fmt.Errorf("state dir %s: write probe in %s failed: %w", path, dir, err)
	}
	return nil
}

// probeGrace is the second look awaitProbe gives the probe after its wait.
const probeGrace = 100 * time.Millisecond

// awaitProbe waits at most wait for the probe's outcome. An expired timer
// alone proves nothing: if this process was stopped (SIGSTOP) or starved
// meanwhile, the probe — a process of its own — may have finished long ago,
// and on waking both are ready (and select picks either). So the outcome
// gets a second look, with a short grace for the reaping goroutine to run;
// only a probe still unfinished after that means a filesystem that takes no
// write.
func awaitProbe(done <-chan error, wait time.Duration) (err error, finished bool) {
	select {
	case err := <-done:
		return err, true
	case <-time.After(wait):
	}
	select {
	case err := <-done:
		return err, true
	case <-time.After(probeGrace):
		return nil, false
	}
}

// probeWrite creates, writes and removes a file in dir: the probe's child side.
func probeWrite(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: " + cmdProbeWrite + " DIR")
	}
	f, err := os.CreateTemp(args[0], ".probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, werr := f.Write([]byte{'1'})
	return errors.Join(werr, f.Close())
}
