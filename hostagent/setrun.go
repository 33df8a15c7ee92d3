package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/restore"
	"github.com/quiesce/quiesce/hostagent/internal/state"
	"github.com/quiesce/quiesce/internal/agenterr"
)

// What `hostagent verify` and `hostagent clone` share: both work on a
// restored snapshot set attached to this instance, print one report whatever
// happens, and undo what they did unless told to keep it.

// setInput is the part of the verify and clone command lines that names
// the set and bounds and records a run on it.
type setInput struct {
	volumes             []string
	mysqld              string
	datadirRel          string
	timeout, deviceWait time.Duration
	runID, stateDir     string
}

// addFlags registers the flags whose meaning is the same for verify and clone.
func (s *setInput) addFlags(fs *flag.FlagSet) {
	fs.DurationVar(&s.deviceWait, "device-wait", 30*time.Second, "wait this long for a volume's block device to appear")
	fs.StringVar(&s.runID, "run-id", "", "run id (default: generated)")
	fs.StringVar(&s.stateDir, "state-dir", "", stateDirHelp)
	fs.StringVar(&s.datadirRel, "datadir-relative", "", "datadir relative to its volume's root (default: the one datadir found)")
}

// validate checks the volume ids (at least one, each once), the bounds,
// --datadir-relative and a given run id.
func (s *setInput) validate() error {
	if len(s.volumes) == 0 {
		return agenterr.Usagef("no --volume given (the EBS volume ids of the set, attached to this instance)")
	}
	seen := map[string]bool{}
	for _, v := range s.volumes {
		if !restore.ValidVolumeID(v) {
			return agenterr.Usagef("--volume %s: want an EBS volume id like vol-0123456789abcdef0", agenterr.Quote(v))
		}
		if seen[v] {
			return agenterr.Usagef("--volume %s given twice", v)
		}
		seen[v] = true
	}
	if s.timeout < minVerifyTimeout || s.timeout > maxVerifyTimeout {
		return agenterr.Usagef("--timeout %s: must be between %s and %s", s.timeout, minVerifyTimeout, maxVerifyTimeout)
	}
	if s.deviceWait < 0 {
		return agenterr.Usagef("--device-wait %s: must not be negative", s.deviceWait)
	}
	if s.datadirRel != "" {
		if _, err := restore.CleanRelative(s.datadirRel); err != nil {
			return agenterr.Usagef("--datadir-relative %v", err)
		}
	}
	if s.runID != "" {
		return validRunID(s.runID)
	}
	return nil
}

// serverBinaryDirs are searched after PATH: a non-login root shell often lacks sbin.
var serverBinaryDirs = []string{"/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/usr/local/mysql/bin", "/usr/bin"}

// findServerBinary checks --mysqld, or finds mariadbd or mysqld.
func (s *setInput) findServerBinary() error {
	if s.mysqld != "" {
		st, err := os.Stat(s.mysqld)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return agenterr.Usagef("--mysqld %s: not an executable file", agenterr.Quote(s.mysqld))
		}
		return nil
	}
	for _, name := range []string{"mariadbd", "mysqld"} {
		if p, err := exec.LookPath(name); err == nil {
			s.mysqld = p
			return nil
		}
		for _, dir := range serverBinaryDirs {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				s.mysqld = p
				return nil
			}
		}
	}
	return agenterr.Usagef("no mariadbd or mysqld on PATH or in %s; name one with --mysqld", strings.Join(serverBinaryDirs, ", "))
}

// readFlagFile opens the file a flag names and parses it; either failing is
// a usage error naming the flag and the path. No path: nothing to read.
func readFlagFile(flag, path string, parse func(io.Reader) ([]string, error)) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, agenterr.Usagef("%s %s: %v", flag, agenterr.Quote(path), err)
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return nil, agenterr.Usagef("%s %s: %v", flag, agenterr.Quote(path), err)
	}
	return v, nil
}

// refused prints the report of a run whose command line was refused (the
// caller parses one report type, whatever happened) and returns err.
func (c *command) refused(err error, report any) error {
	if !errors.Is(err, flag.ErrHelp) {
		c.printJSON(report)
	}
	return err
}

// runReported carries out a verify or clone run, bounded by its --timeout
// and by SIGTERM/SIGINT, and prints the report finish completes, whatever
// happened. A run carried out whose report has problems is exit 6.
func (c *command) runReported(ctx context.Context, in setInput, run func(context.Context) error,
	finish func(runErr error) (report any, problems []string)) error {
	c.runID = in.runID
	ctx, stop := boundedRun(ctx, in.timeout)
	defer stop()
	runErr := run(ctx)
	rep, problems := finish(runErr)
	c.printJSON(rep)
	if runErr != nil {
		return runErr
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", contract.ErrVerifyFailed, strings.Join(problems, "; "))
	}
	return nil
}

// boundedRun is the context of a verify or clone: cancelled by SIGTERM or
// SIGINT, and at timeout, each with its cause, so that the run undoes what it
// did and says why it stopped.
func boundedRun(ctx context.Context, timeout time.Duration) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case s := <-sigs:
			cancel(fmt.Errorf("interrupted by %v", s))
		case <-ctx.Done():
		}
	}()
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("--timeout %s reached", timeout))
	return ctx, func() {
		cancelTimeout()
		signal.Stop(sigs)
		cancel(nil)
	}
}

// runReport fills the problems and timings of a verify or clone report as
// the run goes.
type runReport struct {
	problems *[]string
	timings  map[string]float64
	started  time.Time
}

func newRunReport(problems *[]string, timings map[string]float64) runReport {
	return runReport{problems: problems, timings: timings, started: time.Now()}
}

func (r *runReport) problem(format string, args ...any) {
	*r.problems = append(*r.problems, fmt.Sprintf(format, args...))
}

// timed runs fn and adds its duration to the report's timings under name.
func (r *runReport) timed(name string, fn func() error) error {
	start := time.Now()
	err := fn()
	r.timings[name] += msSince(start)
	return err
}

// end records the run's error as a problem; it returns whether the run was
// ok and how long it took.
func (r *runReport) end(runErr error) (ok bool, durationMS float64) {
	if runErr != nil {
		r.problem("%s", oneLine(runErr.Error()))
	}
	return len(*r.problems) == 0, msSince(r.started)
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// mountSet finds the volumes' block devices and mounts them with mount,
// timed as find_devices and mount; errors are the machinery's, unclassified.
func (r *runReport) mountSet(ctx context.Context, in setInput, journal *restore.Journal,
	mount func([]restore.Device, restore.MountOptions) (*restore.MountedSet, error)) (*restore.MountedSet, error) {
	var devs []restore.Device
	err := r.timed("find_devices", func() (err error) {
		devs, err = restore.FindDevices(ctx, in.volumes, restore.FindOptions{Wait: in.deviceWait})
		return err
	})
	if err != nil {
		return nil, err
	}
	var set *restore.MountedSet
	err = r.timed("mount", func() (err error) {
		set, err = mount(devs, restore.MountOptions{Journal: journal})
		return err
	})
	return set, err
}

// registryDir is where verify and clone keep their volume locks and journals.
func registryDir(stateDir string) string {
	return filepath.Join(state.Resolve(stateDir), "restore")
}

// classify maps the machinery's errors to hostagent's exit codes.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, restore.ErrBusy), errors.Is(err, restore.ErrInUse):
		return fmt.Errorf("%w: %w", contract.ErrBusy, err)
	case errors.Is(err, restore.ErrNotAttached), errors.Is(err, restore.ErrUnsupported),
		errors.Is(err, restore.ErrAmbiguous), errors.Is(err, restore.ErrBadPath):
		return fmt.Errorf("%w: %w", contract.ErrUsage, err)
	}
	return err
}
