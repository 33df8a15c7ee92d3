package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/quiesce/quiesce/contract"
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
	var c cleanLog
	mounts := pool.MountsUnder(workdir)
	// hostagent creates its state dir on any call: only look when it exists.
	_, stateErr := os.Stat(StateDir)
	hadState := stateErr == nil
	if hadState {
		c.thawHeldRuns(ctx, binDir, workdir)
	}
	for _, m := range mounts { // anything still frozen (FITHAW is idempotent)
		_, err := fsfreeze.Thaw(m)
		c.record(err, "")
	}
	for _, pid := range mariadbdUnder(workdir) { // mariadbd servers on our datadirs, by PID
		c.record(stopPID(pid, 30*time.Second), fmt.Sprintf("stopped mariadbd pid %d", pid))
	}
	c.unmountAndDetach(ctx, workdir, mounts)
	if hadState && binDir != "" {
		c.record(removeStateDir(ctx, binDir), "removed "+StateDir)
	}
	return c.done, errors.Join(c.errs...)
}

// cleanLog collects what Clean did and what failed.
type cleanLog struct {
	done []string
	errs []error
}

// record notes err, or, when the step succeeded, what it did (if anything).
func (c *cleanLog) record(err error, did string) {
	switch {
	case err != nil:
		c.errs = append(c.errs, err)
	case did != "":
		c.done = append(c.done, did)
	}
}

// thawHeldRuns thaws the hostagent runs that still hold mounts below workdir.
func (c *cleanLog) thawHeldRuns(ctx context.Context, binDir, workdir string) {
	if _, err := os.Stat(filepath.Join(binDir, "hostagent")); err != nil {
		return
	}
	out, _, _ := runHostagent(ctx, binDir, 30*time.Second, "status")
	var st contract.StatusReport
	if json.Unmarshal(out, &st) != nil {
		return
	}
	for _, r := range st.Runs {
		if r.State != "held" || !anyUnder(r.Mounts, workdir) {
			continue
		}
		_, code, err := runHostagent(ctx, binDir, 30*time.Second, "thaw", "--run-id", r.RunID)
		if contract.ExitCode(code) == contract.ExitLate { // a fail-safe thawed it first: thawed all the same
			err = nil
		}
		c.record(err, "thawed hostagent run "+r.RunID)
	}
}

// unmountAndDetach unmounts the mounts and detaches the loop devices below
// workdir in dependency order: the pool hosts the images behind other loop
// devices, so those mounts and devices go first.
func (c *cleanLog) unmountAndDetach(ctx context.Context, workdir string, mounts []string) {
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
		c.record(pool.Unmount(ctx, m), "unmounted "+m)
	}
	detach := func(under []string) {
		for _, dev := range pool.LoopsBackedBy(workdir) {
			if under != nil && !hostedBy(backingFile(dev), under) {
				continue
			}
			c.record(pool.Detach(ctx, dev), "detached "+dev)
		}
	}
	if len(hosts) > 0 {
		detach(hosts)
	}
	for _, m := range hosts {
		c.record(pool.Unmount(ctx, m), "unmounted "+m)
	}
	detach(nil)
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
