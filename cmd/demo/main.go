// Command demo runs quiesce end to end on one machine (`make demo`) and
// produces the benchmark report (`make bench`):
//
//	demo run   [-cycles 5] [-interval 2s] [-workdir /var/tmp/quiesce-demo] …
//	demo bench [-cycles 50] [-report bin/bench-report.md] …
//	demo replica [-workdir /var/tmp/quiesce-replica] [-bench-cycles 0] …
//	demo clean [-workdir /var/tmp/quiesce-demo]
//
// Everything it starts is stopped, thawed, unmounted and detached on exit,
// on error and on Ctrl-C/SIGTERM. Exit codes: 0 ok, 1 a check failed or the
// demo could not run, 2 bad usage, 130 interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/quiesce/quiesce/internal/buildinfo"
	"github.com/quiesce/quiesce/test/demo/harness"
)

const usage = `usage: demo <command> [flags]

commands:
  run     set up MariaDB on a loop XFS volume with a writer, take -cycles snapshots
          through the real Lambda (RIE) → local EC2/SSM stand-in → SSM document →
          hostagent, restore every snapshot and verify it, print the summary
  bench   measure quiesce against the seed's FTWRL + xfs_freeze recipe; markdown report
  replica a primary and a GTID replica on loop XFS with a writer: snapshot the replica
          (replica lock mode) and the primary, clone each with hostagent clone, wait
          for lag 0, compare CHECKSUM TABLE and GTID positions; -bench-cycles adds the
          lock modes side by side on the replica
  clean   release what a killed demo or bench left behind in -workdir (thaw, stop, unmount,
          detach; default /var/tmp/quiesce-demo, the bench uses /var/tmp/quiesce-bench)
  version print the version

run "demo <command> -h" for its flags.
`

var errUsage = errors.New("usage")

func main() {
	// The sbin tools (mkfs.xfs, losetup, mariadbd) are often missing from a
	// non-login root shell's PATH.
	os.Setenv("PATH", os.Getenv("PATH")+":/usr/local/sbin:/usr/sbin:/sbin")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	// `demo run | head` must not kill the demo mid-cycle when the pipe
	// closes (Go's default for SIGPIPE on stdout): writes fail instead and
	// the cleanup still runs.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(code)
}

// commands are the subcommands that take flags; each reports whether what
// it ran failed a check (exit 1).
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) (failed bool, err error){
	"run":     cmdRun,
	"bench":   cmdBench,
	"replica": cmdReplica,
	"clean":   cmdClean,
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	failed := false
	if cmd := commands[args[0]]; cmd != nil {
		failed, err = cmd(ctx, args[1:], stdout, stderr)
	} else {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, "demo", buildinfo.String())
		case "-h", "-help", "--help", "help":
			fmt.Fprint(stdout, usage)
		default:
			fmt.Fprintf(stderr, "demo: unknown command %q\n%s", args[0], usage)
			return 2
		}
	}
	switch {
	case errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp):
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "demo:", err)
		}
		return 2
	case ctx.Err() != nil:
		if err != nil {
			fmt.Fprintln(stderr, "demo: interrupted:", err)
		} else {
			fmt.Fprintln(stderr, "demo: interrupted")
		}
		return 130
	case err != nil:
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	case failed:
		fmt.Fprintln(stderr, "demo: FAILED (see above)")
		return 1
	}
	return 0
}

func commonFlags(fs *flag.FlagSet, c *harness.Config, workdir string, writers int) {
	fs.StringVar(&c.WorkDir, "workdir", workdir, "work directory for the images and mounts (a previous run's contents are replaced)")
	fs.StringVar(&c.BinDir, "bin", "", "directory with hostagent and bootstrap (default: this program's directory)")
	fs.IntVar(&c.Writers, "writers", writers, "writer connections doing transfers")
	fs.BoolVar(&c.NoRIE, "no-rie", false, "run bootstrap under the built-in Lambda Runtime API instead of aws-lambda-rie")
	fs.BoolVar(&c.Verbose, "v", false, "show the Lambda's log lines")
}

// checkCommon checks the flags run and bench share.
func checkCommon(c harness.Config, cycles int) error {
	return firstError(checkWorkDir(c.WorkDir), inRange("-cycles", cycles, 1, 1000), inRange("-writers", c.Writers, 1, 64))
}

// checkWorkDir is a usage error unless dir may be the demo's work directory.
func checkWorkDir(dir string) error {
	if err := harness.CheckWorkDir(dir); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// firstError is the first non-nil of errs: a usage error is one line.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// inRange is a usage error naming flag and its value unless lo <= v <= hi.
func inRange[T int | time.Duration](flag string, v, lo, hi T) error {
	if v < lo || v > hi {
		return fmt.Errorf("%w: %s %v: want %v..%v", errUsage, flag, v, lo, hi)
	}
	return nil
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

// subcommand runs `demo <name>`: define sets its flags on fs and returns the
// check of their values; start runs only when the flags parse and pass.
func subcommand(name string, args []string, stderr io.Writer, define func(fs *flag.FlagSet) (check func() error), start func() (failed bool, err error)) (bool, error) {
	fs := flag.NewFlagSet("demo "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	check := define(fs)
	if err := parse(fs, args); err != nil {
		return false, err
	}
	if err := check(); err != nil {
		return false, err
	}
	return start()
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) (bool, error) {
	var o harness.RunOptions
	return subcommand("run", args, stderr, func(fs *flag.FlagSet) func() error {
		commonFlags(fs, &o.Config, "/var/tmp/quiesce-demo", 4)
		fs.IntVar(&o.Cycles, "cycles", 5, "snapshot cycles to run")
		fs.DurationVar(&o.Interval, "interval", 2*time.Second, "time between cycle starts")
		fs.StringVar(&o.FreezeTimeout, "freeze-timeout", "30s", "hostagent's hard deadline (the Lambda event's freeze_timeout)")
		fs.BoolVar(&o.WarmLambda, "warm-lambda", false, "keep one Lambda container for all cycles (it then spaces snapshots of the volume 15 s apart, EC2's rule)")
		return func() error {
			return firstError(checkCommon(o.Config, o.Cycles), inRange("-interval", o.Interval, 0, time.Hour))
		}
	}, func() (bool, error) {
		o.Out = stdout
		res, err := harness.Run(ctx, o)
		return res != nil && res.Failed(), err
	})
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) (bool, error) {
	var o harness.BenchOptions
	return subcommand("bench", args, stderr, func(fs *flag.FlagSet) func() error {
		// One writer for the side-by-side timings: with several writers queuing on
		// the transfer sequence row, the seed's FTWRL deadlocks against InnoDB row
		// locks (until innodb_lock_wait_timeout), which the hot-row section shows.
		// Its own work dir: a bench does not replace the demo's kept snapshots.
		commonFlags(fs, &o.Config, "/var/tmp/quiesce-bench", 1)
		fs.IntVar(&o.Cycles, "cycles", 50, "cycles per method")
		fs.IntVar(&o.HotRowCycles, "hot-row-cycles", 2, "cycles of (a) and (b) with -hot-row-writers writers on the hot sequence row (0: skip)")
		fs.IntVar(&o.HotRowWriters, "hot-row-writers", 4, "writers for the hot-row cycles")
		fs.DurationVar(&o.SeedLockTimeout, "seed-lock-timeout", 5*time.Second, "how long the seed script waits for FTWRL before it KILLs its own session")
		fs.StringVar(&o.ReportFile, "report", "", "also write the markdown report to this file")
		fs.DurationVar(&o.SSMLatency, "ssm-latency", 200*time.Millisecond, "injected SSM latency each way (delivery and result) for the Lambda cycles")
		fs.DurationVar(&o.SnapshotLatency, "snapshot-latency", 300*time.Millisecond, "injected CreateSnapshot(s) latency for the Lambda cycles")
		fs.IntVar(&o.VerifyRuns, "verify-runs", 10, "verifications of one snapshot through the Lambda's verify action (0: skip)")
		fs.StringVar(&o.GoBenchFile, "go-bench", "", "`go test -bench` output whose BenchmarkVerifyOverhead lines go into the report")
		return func() error { return checkBench(o) }
	}, func() (bool, error) {
		o.Out = stdout
		res, err := harness.Bench(ctx, o)
		return res != nil && res.Failed(), err
	})
}

// checkBench checks the values of bench's flags.
func checkBench(o harness.BenchOptions) error {
	if err := firstError(checkCommon(o.Config, o.Cycles),
		inRange("-hot-row-writers", o.HotRowWriters, 1, 64),
		inRange("-hot-row-cycles", o.HotRowCycles, 0, 100),
		inRange("-verify-runs", o.VerifyRuns, 0, 1000),
		inRange("-seed-lock-timeout", o.SeedLockTimeout, time.Second, 5*time.Minute)); err != nil {
		return err
	}
	if o.SSMLatency < 0 || o.SnapshotLatency < 0 {
		return fmt.Errorf("%w: latencies must not be negative", errUsage)
	}
	if o.GoBenchFile != "" {
		if _, err := os.Stat(o.GoBenchFile); err != nil {
			return fmt.Errorf("%w: -go-bench %s: %v", errUsage, o.GoBenchFile, err)
		}
	}
	return nil
}

func cmdReplica(ctx context.Context, args []string, stdout, stderr io.Writer) (bool, error) {
	var o harness.ReplicaOptions
	return subcommand("replica", args, stderr, func(fs *flag.FlagSet) func() error {
		fs.StringVar(&o.WorkDir, "workdir", "/var/tmp/quiesce-replica", "work directory for the images and mounts (a previous run's contents are replaced)")
		fs.StringVar(&o.BinDir, "bin", "", "directory with hostagent (default: this program's directory)")
		fs.IntVar(&o.Writers, "writers", 4, "writer connections doing transfers on the primary")
		fs.IntVar(&o.BenchCycles, "bench-cycles", 0, "snapshot cycles of the replica per lock mode (replica, ftwrl, backup-stage); 0: none")
		fs.DurationVar(&o.CatchUp, "catch-up", 2*time.Minute, "how long a replica or clone may take to catch up")
		fs.StringVar(&o.GoBench, "go-bench", "", "go test -bench output to quote BenchmarkReplicaModes from (make bench: bin/bench-go.txt)")
		fs.StringVar(&o.ReportFile, "report", "", "append the markdown section to this file")
		return func() error {
			return firstError(checkWorkDir(o.WorkDir), inRange("-writers", o.Writers, 1, 64), inRange("-bench-cycles", o.BenchCycles, 0, 1000),
				inRange("-catch-up", o.CatchUp, time.Second, time.Hour))
		}
	}, func() (bool, error) {
		o.Out = stdout
		res, err := harness.RunReplica(ctx, o)
		return res != nil && res.Failed(), err
	})
}

func cmdClean(ctx context.Context, args []string, stdout, stderr io.Writer) (bool, error) {
	var workdir, bin string
	return subcommand("clean", args, stderr, func(fs *flag.FlagSet) func() error {
		fs.StringVar(&workdir, "workdir", "/var/tmp/quiesce-demo", "the demo's work directory")
		fs.StringVar(&bin, "bin", "", "directory with hostagent (default: this program's directory)")
		return func() error { return checkWorkDir(workdir) }
	}, func() (bool, error) {
		done, err := harness.Clean(context.WithoutCancel(ctx), workdir, bin)
		for _, d := range done {
			fmt.Fprintln(stdout, "clean:", d)
		}
		if len(done) == 0 && err == nil {
			fmt.Fprintln(stdout, "clean: nothing of the demo's is running or mounted under", workdir)
		}
		if err != nil {
			return false, fmt.Errorf("clean: %s", strings.TrimSpace(err.Error()))
		}
		return false, nil
	})
}
