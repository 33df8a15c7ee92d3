package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/hold"
	"github.com/quiesce/quiesce/hostagent/internal/mysqllock"
	"github.com/quiesce/quiesce/hostagent/internal/preflight"
	"github.com/quiesce/quiesce/hostagent/internal/state"
	"github.com/quiesce/quiesce/hostagent/internal/volumes"
	"github.com/quiesce/quiesce/internal/agenterr"
)

// The --timeout bounds are the hold's (hold/deadline.go), the same the Lambda
// checks (contract).
const (
	minTimeout     = hold.MinTimeout
	maxTimeout     = hold.MaxTimeout
	defaultTimeout = hold.DefaultTimeout
)

const stateDirHelp = "state directory (default $" + state.EnvDir + " or " + state.DefaultDir + "; for tests)"

func (c *command) freeze(ctx context.Context, args []string) error {
	startedAt, startMono := time.Now().UTC(), state.MonoNow() // the start the provisional deadline counts from
	fs := c.flagSet()
	var mounts stringList
	fs.Var(&mounts, "mount", "mount point to freeze (repeat for several)")
	var mf mysqlFlags
	mf.register(fs)
	timeout := fs.Duration("timeout", defaultTimeout, "hard deadline from the first lock/freeze (1s..10m)")
	runID := fs.String("run-id", "", "run id (default: generated)")
	expedite := fs.Bool("expedite-rcu", true, "switch the machine-wide /sys/kernel/rcu_expedited on for the milliseconds of the FIFREEZE calls (a few ms instead of ~40 with writers blocked); restored after, also by the guardian/recovery; =false to leave the kernel setting alone")
	stateDir := fs.String("state-dir", "", stateDirHelp)
	if err := c.parseRunID(fs, args, runID, false); err != nil {
		return err
	}
	c.runID = *runID
	opts, err := mf.finish(fs)
	if err != nil {
		return err
	}
	if err := checkTimeout(*timeout, opts); err != nil {
		return err
	}
	if len(mounts) == 0 {
		return agenterr.Usagef("no --mount given (at least one mount point to freeze)")
	}
	dirPath := state.Resolve(*stateDir)
	if err := checkStateDir(dirPath); err != nil {
		return err
	}
	valid, err := preflight.Validate(mounts, preflight.DefaultEnv(dirPath))
	if err != nil {
		return err
	}
	if *runID == "" {
		*runID = newRunID(startedAt)
		c.runID = *runID
	}
	resolved, _ := mysqllock.Resolve(opts)
	dir, err := openStateDir(dirPath)
	if err != nil {
		return err
	}
	a := newAgent(dir, c.log)
	// Start the holder now: its process start overlaps recovery, volume
	// discovery and the reservation; it waits for Freeze's go-ahead.
	holder, err := a.StartHolder(*runID)
	if err != nil {
		return err
	}
	defer holder.Abort()
	c.recoverStale(ctx, a)
	discover, onEC2, instanceID := discoverer(ctx)
	req := hold.Request{RunID: *runID, MySQL: stateMySQL(resolved), Requested: opts.Mode, Timeout: *timeout,
		StartedAt: startedAt, StartMono: startMono, InstanceID: instanceID, ExpediteRCU: *expedite}
	for _, m := range valid {
		res, err := volumesOf(ctx, discover, onEC2, m)
		if err != nil {
			return err
		}
		req.Mounts = append(req.Mounts, state.Mount{Path: m.Path, FSType: m.FSType, Device: m.Source, Dev: m.Dev, MajMin: m.MajMin,
			VolumeIDs: res.VolumeIDs, EC2Devices: res.EC2Devices})
	}
	rep, err := a.Freeze(ctx, req, holder)
	if err != nil {
		return err
	}
	// Encoded first, so that the hold's last check and the write are as
	// close as can be: a stop between them would print a stale report.
	out, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	if err := a.ConfirmHeld(ctx, rep); err != nil {
		return err
	}
	c.printRaw(append(out, '\n'))
	return nil
}

// checkTimeout bounds --timeout, and refuses one no longer than --lock-wait
// when MySQL is locked: the deadline runs from the start of the lock wait,
// so the lock could only be granted after (or just before) everything must
// thaw.
func checkTimeout(timeout time.Duration, opts mysqllock.Options) error {
	if timeout < minTimeout || timeout > maxTimeout {
		return agenterr.Usagef("--timeout %s: must be between %s and %s", timeout, minTimeout, maxTimeout)
	}
	if _, involved := mysqllock.Resolve(opts); involved && timeout <= opts.LockWait {
		return agenterr.Usagef("--timeout %s must be longer than --lock-wait %s: the lock wait counts against the deadline", timeout, opts.LockWait)
	}
	return nil
}

// discoverer asks IMDS only on EC2 (elsewhere it would only cost its timeout).
func discoverer(ctx context.Context) (d volumes.Discoverer, onEC2 bool, instanceID string) {
	onEC2, instanceID = d.OnEC2()
	if onEC2 {
		d.IMDS = &volumes.IMDS{}
		if instanceID == "" {
			if id, err := d.IMDS.Get(ctx, "/latest/meta-data/instance-id"); err == nil {
				instanceID = strings.TrimSpace(id)
			}
		}
	}
	return d, onEC2, instanceID
}

// volumesOf finds the EBS volumes behind a mount. On EC2 a mount with none
// (instance store, an unrecognised device) cannot be snapshotted, so freezing
// it would only block writers for nothing: that is refused up front. Off EC2
// (tests, the local demo) an empty list is fine. VolumeIDs is never nil.
func volumesOf(ctx context.Context, d volumes.Discoverer, onEC2 bool, m preflight.Mount) (volumes.Result, error) {
	res, err := d.Discover(ctx, m.MajMin, m.Source)
	switch {
	case err != nil && onEC2:
		return res, fmt.Errorf("--mount %q: volume discovery: %w", m.Path, err)
	case err != nil:
		return volumes.Result{VolumeIDs: []string{}}, nil
	case onEC2 && len(res.VolumeIDs) == 0 && len(res.EC2Devices) == 0:
		return res, agenterr.Usagef("--mount %q: no EBS volume behind it (disks %s); it cannot be snapshotted",
			m.Path, strings.Join(res.Disks, ","))
	}
	if res.VolumeIDs == nil {
		res.VolumeIDs = []string{} // reports list no volume as [], not null
	}
	return res, nil
}

func newRunID(t time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "q-" + t.Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

func (c *command) thaw(ctx context.Context, args []string) error {
	a, runID, err := c.openRun(ctx, args, "run id printed by freeze (required)", true)
	if err != nil {
		return err
	}
	rep, err := a.Thaw(ctx, runID)
	if rep != nil {
		c.printJSON(rep) // also when late (exit 4): the report is the answer
	}
	return err
}

func (c *command) status(ctx context.Context, args []string) error {
	fs := c.flagSet()
	runID := fs.String("run-id", "", "only this run")
	stateDir := fs.String("state-dir", "", stateDirHelp)
	jsonOut := fs.Bool("json", false, "print JSON even on a terminal (elsewhere it always is)")
	if err := c.parseRunID(fs, args, runID, false); err != nil {
		return err
	}
	c.runID = *runID
	a, err := c.openAgent(ctx, *stateDir)
	if err != nil {
		return err
	}
	return c.printStatus(a, *runID, *jsonOut)
}

// printStatus prints the StatusReport of one run, or of every run for "".
func (c *command) printStatus(a *hold.Agent, runID string, jsonOut bool) error {
	rep, err := a.Status(runID)
	if err != nil {
		return err
	}
	c.printReport(func(table bool) error { return renderStatus(c.stdout, *rep, table, time.Now()) }, jsonOut)
	return nil
}

// parseRunID parses a subcommand's flags, then checks the parsed --run-id
// (runID): valid when given, and given when required.
func (c *command) parseRunID(fs *flag.FlagSet, args []string, runID *string, required bool) error {
	if err := c.parse(fs, args); err != nil {
		return err
	}
	switch {
	case *runID == "" && required:
		return agenterr.Usagef("--run-id is required")
	case *runID == "":
		return nil
	}
	return validRunID(*runID)
}

// openRun parses the flags of a subcommand that takes only --run-id and
// --state-dir, names the run in error reports and opens the agent
// (recovering stale runs first).
func (c *command) openRun(ctx context.Context, args []string, runIDHelp string, required bool) (*hold.Agent, string, error) {
	fs := c.flagSet()
	runID := fs.String("run-id", "", runIDHelp)
	stateDir := fs.String("state-dir", "", stateDirHelp)
	if err := c.parseRunID(fs, args, runID, required); err != nil {
		return nil, "", err
	}
	c.runID = *runID
	a, err := c.openAgent(ctx, *stateDir)
	return a, *runID, err
}

// check runs every preflight (mounts, volumes, MySQL connection and
// privileges) and changes nothing; the CheckReport lists every problem.
func (c *command) check(ctx context.Context, args []string) error {
	fs := c.flagSet()
	var mounts stringList
	fs.Var(&mounts, "mount", "mount point to check (repeat for several)")
	var mf mysqlFlags
	mf.register(fs)
	stateDir := fs.String("state-dir", "", stateDirHelp)
	jsonOut := fs.Bool("json", false, "print JSON even on a terminal (elsewhere it always is)")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	opts, err := mf.finish(fs)
	if err != nil {
		return err
	}
	dirPath := state.Resolve(*stateDir)
	if err := checkStateDir(dirPath); err != nil {
		return err
	}
	if dirExists(dirPath) { // recover stale runs, but do not create the dir for a check
		if _, err := c.openAgent(ctx, *stateDir); err != nil {
			return err
		}
	}
	valid, problems := preflight.Inspect(mounts, preflight.DefaultEnv(dirPath))
	rep := contract.CheckReport{Mounts: []contract.MountReport{},
		FailsafeLayers: hold.FailsafeLayers(true, hold.SystemdTimerAvailable())}
	discover, onEC2, _ := discoverer(ctx)
	for _, m := range valid {
		res, err := volumesOf(ctx, discover, onEC2, m)
		if err != nil {
			problems = append(problems, err)
		}
		rep.Mounts = append(rep.Mounts, contract.MountReport{Path: m.Path, FSType: m.FSType, Device: m.Source,
			VolumeIDs: res.VolumeIDs, EC2Devices: res.EC2Devices})
	}
	resolved, involved := mysqllock.Resolve(opts)
	if involved {
		info, err := mysqllock.Check(ctx, resolved)
		rep.Lock = info
		if err != nil {
			problems = append(problems, err)
		}
	} else {
		rep.Lock = contract.LockInfo{Mode: contract.LockNone, Requested: opts.Mode}
	}
	if rep.Lock.Requested == "" {
		rep.Lock.Requested = opts.Mode
	}
	for _, p := range problems {
		rep.Problems = append(rep.Problems, oneLine(p.Error()))
	}
	rep.OK = len(problems) == 0
	c.printReport(func(table bool) error { return renderCheck(c.stdout, rep, table) }, *jsonOut)
	if len(problems) == 0 {
		return nil
	}
	if len(problems) > 1 {
		return fmt.Errorf("%w (and %d more problems, see the report)", problems[0], len(problems)-1)
	}
	return problems[0]
}

// Hidden commands: the holder and guardian processes, and the recovery the
// systemd timer (or an operator) runs.

// parseHidden parses a hidden command's --run-id, --state-dir and the flags
// more adds, and opens its state dir.
func (c *command) parseHidden(args []string, more func(fs *flag.FlagSet)) (runID string, dir *state.Dir, err error) {
	fs := c.flagSet()
	id := fs.String("run-id", "", "")
	stateDir := fs.String("state-dir", "", "")
	if more != nil {
		more(fs)
	}
	if err := c.parse(fs, args); err != nil {
		return "", nil, err
	}
	dir, err = state.Open(state.Resolve(*stateDir))
	return *id, dir, err
}

func (c *command) holder(ctx context.Context, args []string) error {
	runID, dir, err := c.parseHidden(args, nil)
	if err != nil {
		return err
	}
	pipe := os.NewFile(3, "report")
	if pipe == nil {
		return errors.New("holder: no report pipe on fd 3")
	}
	// Non-blocking before wrapping, so the go-ahead wait can have a deadline.
	var control *os.File
	if err := unix.SetNonblock(4, true); err == nil {
		control = os.NewFile(4, "control")
	}

	return newAgent(dir, nil).Holder(ctx, runID, pipe, control)
}

func (c *command) guardian(ctx context.Context, args []string) error {
	var holderPID int
	var holderStart uint64
	var deadline int64
	var runJSON, fdsJSON string
	runID, dir, err := c.parseHidden(args, func(fs *flag.FlagSet) {
		fs.IntVar(&holderPID, "holder-pid", 0, "")
		fs.Uint64Var(&holderStart, "holder-start", 0, "")
		fs.Int64Var(&deadline, hold.GuardianDeadlineFlag, 0, "")
		fs.StringVar(&runJSON, "run-json", "", "")
		fs.StringVar(&fdsJSON, "mount-fds", "", "")
	})
	if err != nil {
		return err
	}
	var given *state.Run
	if runJSON != "" {
		var r state.Run
		if err := json.Unmarshal([]byte(runJSON), &r); err == nil && r.RunID == runID {
			given = &r
		}
	}
	var fds map[string]int
	if fdsJSON != "" {
		_ = json.Unmarshal([]byte(fdsJSON), &fds)
	}
	return newAgent(dir, nil).Guardian(ctx, runID, state.Proc{PID: holderPID, Start: holderStart},
		hold.Deadline{Mono: deadline}, given, fds)
}

func (c *command) recover(ctx context.Context, args []string) error {
	fs := c.flagSet()
	runID := fs.String("run-id", "", "only this run")
	stateDir := fs.String("state-dir", "", stateDirHelp)
	if err := c.parseRunID(fs, args, runID, false); err != nil {
		return err
	}
	dir, err := openStateDir(state.Resolve(*stateDir))
	if err != nil {
		return err
	}
	a := newAgent(dir, c.log)
	if _, err := a.Recover(ctx, *runID); err != nil {
		return err
	}
	return c.printStatus(a, *runID, false)
}
