package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/mysqllock"
	"github.com/quiesce/quiesce/hostagent/internal/restore"
)

// cloner is one `hostagent clone` run: it fills the report as it goes and,
// unless the clone ends up replicating, undoes every step it took.
type cloner struct {
	runReport
	in      cloneInput
	log     *slog.Logger
	rep     contract.CloneReport
	undo    restore.Undo
	journal *restore.Journal
	set     *restore.MountedSet
	datadir string
	server  *restore.DetachedServer // built-in start only
	// errorLog is the built-in server's --log-error from the defaults
	// file, where it says why it did not start ("" when it prints to Output).
	errorLog string
	client   *mysqllock.Client
}

func newCloner(in cloneInput, c *command) *cloner {
	cl := &cloner{in: in, log: c.log, rep: newCloneReport(in)}
	cl.runReport = newRunReport(&cl.rep.Problems, cl.rep.TimingsMS)
	return cl
}

// run clones. A clone that does not replicate goes to the report's problems
// (exit 6); an error means it could not be carried out. Either way
// everything is undone; only a replicating clone is left mounted and running.
func (cl *cloner) run(ctx context.Context) (err error) {
	defer func() {
		if err == nil && len(cl.rep.Problems) == 0 {
			cl.keep()
			return
		}
		cl.client.Close()
		if uerr := cl.timed("undo", func() error { return cl.undo.Run(ctx, cleanupBound) }); uerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", uerr))
		}
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
		}
	}()
	steps := []func(context.Context) error{cl.prepare, cl.mount, cl.start, cl.configure, cl.awaitReplication}
	for _, step := range steps {
		if err := step(ctx); err != nil || len(cl.rep.Problems) > 0 {
			return err
		}
	}
	return nil
}

// keep hands the clone over: mounted, running, no longer journaled (the
// next run's stale cleanup must not undo it).
func (cl *cloner) keep() {
	cl.client.Close()
	cl.set.Keep()
	cl.undo = restore.Undo{}
	if err := cl.journal.End(); err != nil {
		cl.rep.Notes = append(cl.rep.Notes, fmt.Sprintf("release the volume locks: %v", err))
	}
	cl.rep.LeftRunning = true
	cl.rep.Notes = append(cl.rep.Notes, "the volumes are mounted but not in /etc/fstab: add them there (mount options as the source's) so a reboot keeps them")
	if cl.server != nil {
		cl.rep.Notes = append(cl.rep.Notes, fmt.Sprintf("the server (pid %d) was started by hostagent, not by a service manager: hand it to the target's service so a reboot starts it again", cl.server.Proc.PID))
	}
}

// prepare locks the volumes for this run (cleaning up stale runs first).
func (cl *cloner) prepare(ctx context.Context) error {
	reg, err := restore.OpenRegistry(registryDir(cl.in.stateDir))
	if err != nil {
		return err
	}
	cl.journal, err = reg.Begin(ctx, cl.in.runID, "", cl.in.volumes)
	if err != nil {
		return cloneClassify(err)
	}
	journal := cl.journal
	cl.undo.Push("release volumes", func(context.Context) error { return journal.End() })
	return nil
}

// mount finds the devices, mounts them at the source's mount points, finds
// the datadir and removes the source's identity and replication state.
func (cl *cloner) mount(ctx context.Context) error {
	set, err := cl.mountSet(ctx, cl.in.setInput, cl.journal, func(devs []restore.Device, o restore.MountOptions) (*restore.MountedSet, error) {
		return restore.MountAt(ctx, devs, cl.in.mounts, o)
	})
	if err != nil {
		return cloneClassify(err)
	}
	cl.set = set
	cl.undo.Push("unmount", func(ctx context.Context) error { return set.Close(ctx) })
	cl.datadir, err = cl.set.FindDataDir(cl.in.datadirRel)
	if errors.Is(err, restore.ErrNoDataDir) {
		cl.problem("%v", err)
		return nil
	}
	if err != nil {
		return cloneClassify(err)
	}
	cl.rep.DataDir = cl.datadir
	if cl.rep.Removed, err = restore.RemoveSourceState(cl.datadir); err != nil {
		return err
	}
	return cl.rewriteIndexes()
}

// rewriteIndexes points the binlog and relay-log indexes at the clone's
// files where they name another directory (a clone mounted elsewhere than
// the source was): the server must never open, append to or purge files
// outside the clone.
func (cl *cloner) rewriteIndexes() error {
	_, err := cl.set.RewriteLogIndexes()
	return err
}

// start starts the server (the operator's command, or the built-in start)
// and connects to it.
func (cl *cloner) start(ctx context.Context) error {
	return cl.timed("start", func() error {
		if cl.in.startCmd != "" {
			return cl.startByCommand(ctx)
		}
		return cl.startBuiltIn(ctx)
	})
}

func (cl *cloner) startByCommand(ctx context.Context) error {
	stop := cl.in.stopCmd
	cl.undo.Push("stop server (--stop-command)", func(ctx context.Context) error {
		if out, err := runShell(ctx, stop); err != nil {
			return fmt.Errorf("%s: %w: %s", stop, err, out)
		}
		return nil
	})
	if out, err := runShell(ctx, cl.in.startCmd); err != nil {
		cl.problem("--start-command %q failed: %v: %s", cl.in.startCmd, err, oneLine(out))
		return nil
	}
	return cl.connect(ctx, nil)
}

// runShell runs cmd with /bin/sh -c, bounded by ctx, and returns its output.
func runShell(ctx context.Context, cmd string) (string, error) {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.WaitDelay = 5 * time.Second
	out, err := c.CombinedOutput()
	if len(out) > 2000 {
		out = out[len(out)-2000:]
	}
	return strings.TrimSpace(string(out)), err
}

func (cl *cloner) startBuiltIn(ctx context.Context) error {
	uid, gid, err := restore.Owner(cl.datadir)
	if err != nil {
		return err
	}
	if err := restore.CheckTraversable(cl.datadir, uid, gid); err != nil {
		return fmt.Errorf("%w: %w", contract.ErrUsage, err)
	}
	spec := restore.DetachedSpec{Binary: cl.in.mysqld, OperatorOptions: cl.in.serverOptions, DataDir: cl.datadir,
		UID: uid, GID: gid, ServerID: cl.in.serverID, Journal: cl.journal,
		Output: filepath.Join(registryDir(cl.in.stateDir), cl.in.runID+".server.out")}
	cl.errorLog = configuredErrorLog(cl.in.serverOptions, cl.datadir)
	srv, err := restore.StartDetached(spec)
	if err != nil {
		return err
	}
	cl.server = srv
	cl.undo.Push("stop server", func(ctx context.Context) error { return srv.Stop(ctx) })
	return cl.connect(ctx, srv)
}

// connect waits until the server answers (or, for the built-in start,
// exits: a failed clone, with the server's own words).
func (cl *cloner) connect(ctx context.Context, srv *restore.DetachedServer) error {
	var exited <-chan struct{}
	if srv != nil {
		exited = srv.Exited()
	}
	var last error
	for {
		c, err := mysqllock.Dial(ctx, cl.in.client, time.Minute)
		if err == nil {
			cl.client = c
			cl.rep.ServerVersion = c.Version()
			return nil
		}
		last = err
		select {
		case <-exited:
			cl.problem("server exited during startup (%v): %s", srv.ExitErr(), serverFailure(srv, cl.errorLog))
			return nil
		case <-ctx.Done():
			return fmt.Errorf("server not reachable: %w (last: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// serverFailure names why the built-in server did not start: the [ERROR]
// lines of what it printed.
func serverFailure(srv *restore.DetachedServer, errorLog string) string {
	out := srv.OutputTail(8000)
	if errorLog != "" {
		out += "\n" + fileTail(errorLog, 16000)
	}
	if lines := restore.ErrorLines(strings.NewReader(out), 8); len(lines) > 0 {
		return strings.Join(lines, " | ")
	}
	lines := strings.Split(out, "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " | ")
}

// cloneClassify maps the machinery's errors to exit codes.
func cloneClassify(err error) error {
	if errors.Is(err, restore.ErrMountPoint) {
		return fmt.Errorf("%w: %w", contract.ErrUsage, err)
	}
	return classify(err)
}

// finish completes the report after run.
func (cl *cloner) finish(runErr error) contract.CloneReport {
	cl.rep.OK, cl.rep.DurationMS = cl.end(runErr)
	if cl.server != nil && !cl.rep.LeftRunning {
		_ = os.Remove(cl.server.Output)
	}
	return cl.rep
}

// configuredErrorLog is the log-error the operator's server options set,
// absolute (a relative one is in the datadir); "" when none.
func configuredErrorLog(opts []string, datadir string) string {
	logPath := ""
	for _, o := range opts {
		name, value, ok := strings.Cut(strings.TrimPrefix(o, "--"), "=")
		if ok && strings.ReplaceAll(name, "_", "-") == "log-error" {
			logPath = value
		}
	}
	if logPath != "" && !filepath.IsAbs(logPath) {
		logPath = filepath.Join(datadir, logPath)
	}
	return logPath
}

// fileTail returns the last n bytes of a file (a long-lived server's error
// log can be large; this start's lines are at its end).
func fileTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		if _, err := f.Seek(st.Size()-n, io.SeekStart); err != nil {
			return ""
		}
	}
	b, _ := io.ReadAll(io.LimitReader(f, n))
	return string(b)
}
