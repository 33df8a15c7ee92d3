package restore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/hostagent/internal/state"
)

// ErrBusy: another live run uses one of the volumes.
var ErrBusy = errors.New("volume busy")

// WorkDirPrefix starts the name of every run's private directory; stale
// cleanup removes only directories named so.
const WorkDirPrefix = "quiesce-restore-"

// Registry is the directory (in hostagent's state dir) where runs lock their
// volumes and journal what they mounted and started.
type Registry struct {
	Dir string
}

// Journal is one run's record: enough for a later run to undo it after a
// SIGKILL (the server is killed by the kernel through its parent-death
// signal, but mounts outlive their maker).
type Journal struct {
	RunID   string     `json:"run_id"`
	Owner   state.Proc `json:"owner"`
	WorkDir string     `json:"work_dir"`
	Volumes []string   `json:"volumes"`
	Mounts  []string   `json:"mounts"`
	Server  state.Proc `json:"server"`

	reg  *Registry
	path string
}

type volumeLock struct {
	RunID   string     `json:"run_id"`
	Owner   state.Proc `json:"owner"`
	Journal string     `json:"journal"`
}

// OpenRegistry creates dir (0700) if needed.
func OpenRegistry(dir string) (*Registry, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restore registry: %w", err)
	}
	return &Registry{Dir: dir}, nil
}

// withLock runs fn holding the registry's flock (bounded wait).
func (r *Registry) withLock(fn func() error) error {
	f, err := os.OpenFile(filepath.Join(r.Dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("restore registry: %w", err)
	}
	defer f.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			return fmt.Errorf("restore registry lock: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return fn()
}

// Begin cleans up stale runs, locks every volume for runID (ErrBusy when a
// live run holds one) and writes the run's journal. End releases them.
func (r *Registry) Begin(ctx context.Context, runID, workDir string, vols []string) (*Journal, error) {
	j := &Journal{RunID: runID, Owner: state.Self(), WorkDir: workDir, Volumes: vols, reg: r}
	j.path = filepath.Join(r.Dir, fmt.Sprintf("run-%s-%d.json", runID, j.Owner.PID))
	err := r.withLock(func() error {
		if _, err := r.cleanStale(ctx); err != nil {
			return err
		}
		for _, v := range vols {
			if l, err := r.readLock(v); err == nil && l.Owner.Alive() {
				return fmt.Errorf("volume %s is used by run %s (pid %d): %w", v, l.RunID, l.Owner.PID, ErrBusy)
			}
		}
		if err := j.save(); err != nil {
			return err
		}
		for _, v := range vols {
			if err := writeJSON(r.lockPath(v), volumeLock{RunID: runID, Owner: j.Owner, Journal: j.path}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return j, nil
}

func (r *Registry) lockPath(vol string) string { return filepath.Join(r.Dir, vol+".lock") }

func (r *Registry) readLock(vol string) (volumeLock, error) {
	var l volumeLock
	data, err := os.ReadFile(r.lockPath(vol))
	if err != nil {
		return l, err
	}
	return l, json.Unmarshal(data, &l)
}

// AddMount records a mount point before it is mounted.
func (j *Journal) AddMount(path string) error {
	j.Mounts = append(j.Mounts, path)
	return j.save()
}

// SetServer records the started server.
func (j *Journal) SetServer(p state.Proc) error {
	j.Server = p
	return j.save()
}

// End removes the run's volume locks and journal: call it once everything
// the run made is undone. Kept otherwise, so the next run retries.
func (j *Journal) End() error {
	return j.reg.withLock(func() error { return j.reg.release(j) })
}

func (r *Registry) release(j *Journal) error {
	for _, v := range j.Volumes {
		if l, err := r.readLock(v); err == nil && l.Owner == j.Owner && l.RunID == j.RunID {
			if err := os.Remove(r.lockPath(v)); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(j.path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

func (j *Journal) save() error { return writeJSON(j.path, j) }

func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("restore registry: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("restore registry: %w", err)
	}
	return nil
}

// CleanStale undoes the runs whose owner is gone: kills their server if it
// still runs, unmounts their mounts, removes their work dir, and drops their
// locks. It returns the run ids cleaned.
func (r *Registry) CleanStale(ctx context.Context) ([]string, error) {
	var ids []string
	err := r.withLock(func() error {
		var err error
		ids, err = r.cleanStale(ctx)
		return err
	})
	return ids, err
}

func (r *Registry) cleanStale(ctx context.Context) ([]string, error) {
	paths, _ := filepath.Glob(filepath.Join(r.Dir, "run-*.json"))
	var cleaned []string
	var errs []error
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		j := &Journal{reg: r, path: p}
		if err := json.Unmarshal(data, j); err != nil || j.Owner.Alive() {
			continue
		}
		if err := undoStale(ctx, j); err != nil {
			errs = append(errs, fmt.Errorf("stale run %s (pid %d): %w", j.RunID, j.Owner.PID, err))
			continue
		}
		if err := r.release(j); err != nil {
			errs = append(errs, err)
			continue
		}
		cleaned = append(cleaned, j.RunID)
	}
	// Locks whose owner died before writing a journal, or whose journal is gone.
	locks, _ := filepath.Glob(filepath.Join(r.Dir, "vol-*.lock"))
	for _, lp := range locks {
		vol := strings.TrimSuffix(filepath.Base(lp), ".lock")
		if l, err := r.readLock(vol); err == nil && !l.Owner.Alive() {
			if _, err := os.Stat(l.Journal); os.IsNotExist(err) {
				_ = os.Remove(lp)
			}
		}
	}
	return cleaned, errors.Join(errs...)
}

// undoStale kills the stale run's server, unmounts what it mounted, and
// removes its work dir only when nothing is mounted below it any more
// (removing a still-mounted volume's files would destroy them).
func undoStale(ctx context.Context, j *Journal) error {
	if j.Server.Alive() {
		_ = syscall.Kill(j.Server.PID, syscall.SIGKILL)
		for i := 0; i < 100 && j.Server.Alive(); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if j.Server.Alive() {
			return fmt.Errorf("server pid %d survives SIGKILL", j.Server.PID)
		}
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unmountTimeout)
	defer cancel()
	for i := len(j.Mounts) - 1; i >= 0; i-- {
		if err := Unmount(uctx, j.Mounts[i]); err != nil {
			return err
		}
	}
	if j.WorkDir == "" || !filepath.IsAbs(j.WorkDir) || !strings.HasPrefix(filepath.Base(j.WorkDir), WorkDirPrefix) {
		return nil
	}
	left, err := mountsUnder(j.WorkDir)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("still mounted under %s: %s", j.WorkDir, strings.Join(left, ", "))
	}
	return os.RemoveAll(j.WorkDir)
}
