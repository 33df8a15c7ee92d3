package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/quiesce/quiesce/internal/fsfreeze"
	"github.com/quiesce/quiesce/test/demo/pool"
)

// Clean releases what a killed demo left under workdir: hostagent runs
// holding its mounts are thawed, every mount below it is FITHAWed, the
// mariadbd processes whose datadir is below it are stopped by PID, then the
// mounts are unmounted (deepest first) and the loop devices backed by its
// files detached. It touches nothing outside workdir.
func Clean(ctx context.Context, workdir, binDir string) (done []string, err error) {
	if err := CheckWorkDir(workdir); err != nil {
		return nil, err
	}
	if binDir == "" {
		if exe, err := os.Executable(); err == nil {
			binDir = filepath.Dir(exe)
		}
	}
	var errs []error
	mounts := pool.MountsUnder(workdir)
	// hostagent creates its state dir on any call: only look when it exists.
	stateDir := StateDirFor(workdir)
	_, stateErr := os.Stat(stateDir)
	hadState := stateErr == nil

	// 1. Runs hostagent still holds on our mounts.
	if hadState {
		d, err := thawHeldUnder(ctx, binDir, stateDir, workdir)
		done, errs = append(done, d...), append(errs, err)
	}
	// 2. Anything still frozen (FITHAW is idempotent).
	for _, m := range mounts {
		if _, err := fsfreeze.Thaw(m); err != nil {
			errs = append(errs, err)
		}
	}
	// 3. mariadbd servers on our datadirs, by PID.
	for _, pid := range mariadbdUnder(workdir) {
		if err := stopPID(pid, 30*time.Second); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, fmt.Sprintf("stopped mariadbd pid %d", pid))
		}
	}
	// 4. Unmount and detach in dependency order.
	d, err := unmountAndDetach(ctx, workdir, mounts)
	done, errs = append(done, d...), append(errs, err)
	if hadState && binDir != "" {
		if err := removeStateDir(ctx, binDir, stateDir); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, "removed "+stateDir)
		}
	}
	return done, errors.Join(errs...)
}

// hostedBy reports whether file lies below one of the mount points.
func hostedBy(file string, mounts []string) bool {
	for _, m := range mounts {
		if strings.HasPrefix(file, m+"/") {
			return true
		}
	}
	return false
}

// backingFile is a loop device's backing file path.
func backingFile(dev string) string {
	data, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file"))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(strings.TrimSpace(string(data)), " (deleted)")
}

func anyUnder(paths []string, dir string) bool {
	for _, p := range paths {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			return true
		}
	}
	return false
}

// mariadbdUnder lists mariadbd processes started with a --datadir below dir.
func mariadbdUnder(dir string) []int {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []int
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil || len(data) == 0 {
			continue
		}
		args := bytes.Split(bytes.TrimRight(data, "\x00"), []byte{0})
		if filepath.Base(string(args[0])) != "mariadbd" {
			continue
		}
		for _, a := range args[1:] {
			if d, ok := strings.CutPrefix(string(a), "--datadir="); ok && (d == dir || strings.HasPrefix(d, dir+"/")) {
				if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
					out = append(out, pid)
				}
				break
			}
		}
	}
	return out
}

// stopPID sends SIGTERM, waits up to limit for the process to go, then SIGKILLs.
func stopPID(pid int, limit time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return nil // already gone
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("pid %d survived SIGKILL", pid)
}

// thawHeldUnder thaws the hostagent runs that hold a mount below workdir.
func thawHeldUnder(ctx context.Context, binDir, stateDir, workdir string) (done []string, err error) {
	if _, err := os.Stat(filepath.Join(binDir, "hostagent")); err != nil {
		return nil, nil // no hostagent here: nothing it could hold
	}
	thawed, err := thawHeld(ctx, binDir, stateDir, 30*time.Second, func(mounts []string) bool { return anyUnder(mounts, workdir) })
	if isStatusError(err) {
		err = nil // a status that does not answer leaves the FITHAW of every mount below to do it
	}
	for _, id := range thawed {
		done = append(done, "thawed hostagent run "+id)
	}
	return done, err
}

// unmountAndDetach unmounts the mounts below workdir and detaches the loop
// devices backed by its files. The pool hosts the images behind other loop
// devices, so those mounts and devices go first.
func unmountAndDetach(ctx context.Context, workdir string, mounts []string) (done []string, err error) {
	var errs []error
	loops := pool.LoopsBackedBy(workdir)
	hosting := func(m string) bool {
		for _, l := range loops {
			if bf := backingFile(l); strings.HasPrefix(bf, m+"/") {
				return true
			}
		}
		return false
	}
	var hosts []string
	for _, m := range mounts {
		if hosting(m) {
			hosts = append(hosts, m)
			continue
		}
		if err := pool.Unmount(ctx, m); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, "unmounted "+m)
		}
	}
	detach := func(under []string) {
		for _, dev := range pool.LoopsBackedBy(workdir) {
			bf := backingFile(dev)
			if under != nil && !hostedBy(bf, under) {
				continue
			}
			if err := pool.Detach(ctx, dev); err != nil {
				errs = append(errs, err)
			} else {
				done = append(done, "detached "+dev)
			}
		}
	}
	if len(hosts) > 0 {
		detach(hosts)
	}
	for _, m := range hosts {
		if err := pool.Unmount(ctx, m); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, "unmounted "+m)
		}
	}
	detach(nil)
	return done, errors.Join(errs...)
}
