package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/hold"
	"github.com/quiesce/quiesce/hostagent/internal/mysqllock"
	"github.com/quiesce/quiesce/hostagent/internal/state"
	"github.com/quiesce/quiesce/internal/agenterr"
	"github.com/quiesce/quiesce/internal/buildinfo"
	"github.com/quiesce/quiesce/internal/fsfreeze"
)

const usage = `usage: hostagent <command> [flags]

commands:
  freeze --mount P [--mount P2 ...] [mysql flags] [--timeout 30s] [--run-id ID]
  thaw   --run-id ID
  status [--run-id ID] [--json]
  check  --mount P [...] [mysql flags] [--json]
  verify --volume vol-… [--volume …] [--expect-binlog-file F --expect-binlog-pos N]
         [--expect-gtid G] [--check-sql FILE] [--mysqld PATH] [--timeout 2h]
         (on a verifier instance: starts a throwaway server on the attached
         volumes of a snapshot set and checks it; exit 6 when it fails)
  clone  --volume vol-… --mount P [--volume … --mount …] --source-host H [--source-port N]
         --replication-defaults-file F (--source-gtid G | --source-log-file F --source-log-pos N)
         [--start-command CMD --stop-command CMD | --mysqld PATH] [--mysql-defaults-file F]
         [--server-id N] [--source-server-id N] [--timeout 30m]
         (on a target instance: mounts a restored set at the source's mount points,
         starts it and makes it a replica of the source; exit 6 when replication
         will not start)
  version

mysql flags: --mysql-defaults-file F --mysql-socket S --mysql-user U
             --mysql-lock auto|ftwrl|backup-stage|instance|replica|none
             --lock-wait 5s --long-query-limit 10s [--kill-long-queries]
Run "hostagent <command> -h" for a command's flags.
`

// subcommands are the commands Run dispatches to, the hidden ones (holder,
// guardian, recover) included.
var subcommands = map[string]func(*command, context.Context, []string) error{
	"freeze": (*command).freeze, "thaw": (*command).thaw, "status": (*command).status,
	"check": (*command).check, "verify": (*command).verify, "clone": (*command).clone,
	"version": (*command).version, "--version": (*command).version, "-version": (*command).version,
	hold.CmdHolder: (*command).holder, hold.CmdGuardian: (*command).guardian, hold.CmdRecover: (*command).recover,
}

// Run is the whole program; main only exits with its result. It is the one
// place where errors become exit codes (exitCode).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		args = []string{""}
	}
	cmd, rest := args[0], args[1:]
	c := &command{name: cmd, stdout: stdout, stderr: stderr,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	var err error
	if run, ok := subcommands[cmd]; ok {
		err = run(c, ctx, rest)
	} else {
		switch cmd {
		case "help", "-h", "--help":
			fmt.Fprint(stdout, usage)
			return int(contract.ExitOK)
		case cmdProbeWrite:
			if perr := probeWrite(rest); perr != nil {
				return int(contract.ExitFailed)
			}
			return int(contract.ExitOK)
		case "":
			err = agenterr.Usagef("no command given (want freeze, thaw, status, check, verify, clone or version; see hostagent help)")
		default:
			err = agenterr.Usagef("unknown command %s (want freeze, thaw, status, check, verify, clone or version)", agenterr.Quote(cmd))
		}
	}
	if errors.Is(err, flag.ErrHelp) {
		return int(contract.ExitOK)
	}
	code := exitCode(err)
	if err != nil && !c.printed {
		c.printJSON(contract.ErrorReport{RunID: c.runID, Error: capMessage(err.Error()), ExitCode: code})
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", capMessage(strings.TrimSpace("hostagent "+cmd)), capMessage(oneLine(err.Error())))
	}
	return int(code)
}

// exitCode maps an error to its exit code (docs/architecture.md#exit-codes).
func exitCode(err error) contract.ExitCode { return contract.ExitCodeOf(err) }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// maxMessage bounds an error message on stdout/stderr. Values are already
// cut where they are named (agenterr.Quote); this is the backstop for any
// message that still carries a huge argument (an unknown 100 000-byte flag).
const maxMessage = 1000

func capMessage(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(message cut, %d bytes)", s[:cut], len(s))
}

// shortenQuoted cuts the first quoted value in a flag package error
// ("invalid value \"…\" for flag -timeout: parse error") with agenterr.Quote.
func shortenQuoted(msg string) string {
	i := strings.IndexByte(msg, '"')
	if i < 0 {
		return msg
	}
	q, err := strconv.QuotedPrefix(msg[i:])
	if err != nil {
		return msg
	}
	v, err := strconv.Unquote(q)
	if err != nil {
		return msg
	}
	return msg[:i] + agenterr.Quote(v) + msg[i+len(q):]
}

// command is one invocation's context.
type command struct {
	name           string
	stdout, stderr io.Writer
	log            *slog.Logger
	runID          string
	printed        bool // a report was printed on stdout already
}

// printReport prints a report through render: a table when stdout is a
// terminal and --json was not given, the JSON object otherwise.
func (c *command) printReport(render func(table bool) error, forceJSON bool) {
	if err := render(!forceJSON && isTerminal(c.stdout)); err != nil {
		fmt.Fprintf(c.stderr, "hostagent %s: write report: %v\n", c.name, err)
	}
	c.printed = true
}

func (c *command) printJSON(v any) {
	enc := json.NewEncoder(c.stdout)
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(c.stderr, "hostagent %s: write report: %v\n", c.name, err)
	}
	c.printed = true
}

// printRaw writes an already encoded report in one write.
func (c *command) printRaw(b []byte) {
	if _, err := c.stdout.Write(b); err != nil {
		fmt.Fprintf(c.stderr, "hostagent %s: write report: %v\n", c.name, err)
	}
	c.printed = true
}

// flagSet returns a FlagSet whose parse errors become one-line usage errors.
func (c *command) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("hostagent "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func (c *command) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(c.stderr)
			fs.PrintDefaults()
			return err
		}
		return agenterr.Usagef("%s", shortenQuoted(err.Error()))
	}
	if fs.NArg() > 0 {
		return agenterr.Usagef("unexpected argument %s", agenterr.Quote(fs.Arg(0)))
	}
	return nil
}

// stringList is a repeatable flag (--mount A --mount B); commas also split.
// Values are kept as given: whitespace around one is refused by preflight,
// never trimmed (" /data" is not "/data").
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	if strings.Contains(v, ",") {
		if _, err := os.Stat(v); err == nil {
			// Splitting it would name other paths than the one that exists.
			return errors.New("a mount point whose path contains ',' cannot be given (',' separates mount points)")
		}
	}
	*s = append(*s, strings.Split(v, ",")...)
	return nil
}

func validRunID(id string) error {
	if !state.ValidRunID(id) {
		return agenterr.Usagef("--run-id %s: want 1-64 letters, digits or '-', starting with a letter or digit", agenterr.Quote(id))
	}
	return nil
}

// openAgent opens the state dir and recovers stale runs first, as every
// operational subcommand does.
func (c *command) openAgent(ctx context.Context, stateDir string) (*hold.Agent, error) {
	dir, err := openStateDir(state.Resolve(stateDir))
	if err != nil {
		return nil, err
	}
	a := newAgent(dir, c.log)
	c.recoverStale(ctx, a)
	return a, nil
}

// recover thaws stale runs (all their processes dead, or wedged past the deadline).
func (c *command) recoverStale(ctx context.Context, a *hold.Agent) {
	if ids, err := a.Recover(ctx, ""); err != nil {
		c.log.Error("recovery", "err", err)
	} else if len(ids) > 0 {
		c.log.Warn("recovered stale runs (thawed)", "runs", ids)
	}
}

func newAgent(dir *state.Dir, log *slog.Logger) *hold.Agent {
	exe := "/proc/self/exe"
	real, err := os.Executable()
	if err != nil {
		real = exe
	}
	return &hold.Agent{
		Dir: dir,
		Exe: exe,
		Log: log,
		MySQL: hold.MySQL{
			Acquire: func(ctx context.Context, o state.MySQL) (hold.Lock, contract.LockInfo, error) {
				l, info, err := mysqllock.Acquire(ctx, mysqlOptions(o))
				if l == nil {
					return nil, info, err // no typed-nil in the interface
				}
				return l, info, err
			},
			KillConnection: func(ctx context.Context, o state.MySQL, id uint64) error {
				return mysqllock.KillConnection(ctx, mysqlOptions(o), id)
			},
			RestartAppliers: func(ctx context.Context, o state.MySQL, channels []string) error {
				return mysqllock.RestartAppliers(ctx, mysqlOptions(o), channels)
			},
			RunningAppliers: func(ctx context.Context, o state.MySQL) ([]string, error) {
				return mysqllock.RunningAppliers(ctx, mysqlOptions(o))
			},
		},
		SystemdTimer: hold.SystemdTimer(real, dir.Path),
		RCU:          hold.RCUKnob{Expedited: fsfreeze.RCUExpedited, Set: fsfreeze.SetRCUExpedited},
	}
}

func mysqlOptions(m state.MySQL) mysqllock.Options {
	return mysqllock.Options{Mode: m.Mode, DefaultsFile: m.DefaultsFile, Socket: m.Socket, User: m.User,
		Explicit: m.Explicit, LockWait: m.LockWait, LongQueryLimit: m.LongQueryLimit, KillLongQueries: m.KillLongQueries}
}

func stateMySQL(o mysqllock.Options) state.MySQL {
	return state.MySQL{Mode: o.Mode, DefaultsFile: o.DefaultsFile, Socket: o.Socket, User: o.User,
		Explicit: o.Explicit, LockWait: o.LockWait, LongQueryLimit: o.LongQueryLimit, KillLongQueries: o.KillLongQueries}
}

// mysqlFlags registers the MySQL flags; call done() after parsing.
type mysqlFlags struct {
	opts mysqllock.Options
}

func (m *mysqlFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.opts.DefaultsFile, "mysql-defaults-file", "", "option file with a [client] group (socket/host/port/user/password)")
	fs.StringVar(&m.opts.Socket, "mysql-socket", "", "server unix socket")
	fs.StringVar(&m.opts.User, "mysql-user", "", "user (default root via unix-socket auth)")
	fs.StringVar(&m.opts.Mode, "mysql-lock", contract.LockAuto, "auto|ftwrl|backup-stage|instance|replica|none")
	fs.DurationVar(&m.opts.LockWait, "lock-wait", 5*time.Second, "session lock_wait_timeout: give up (exit 5) after this")
	fs.DurationVar(&m.opts.LongQueryLimit, "long-query-limit", 10*time.Second, "refuse to lock while a query runs longer than this (0: off)")
	fs.BoolVar(&m.opts.KillLongQueries, "kill-long-queries", false, "kill such queries instead of refusing")
}

// finish marks MySQL as named when any connection option or a concrete mode was given.
func (m *mysqlFlags) finish(fs *flag.FlagSet) (mysqllock.Options, error) {
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "mysql-defaults-file", "mysql-socket", "mysql-user":
			// An empty value (a wrapper passing an unset option) names nothing.
			m.opts.Explicit = m.opts.Explicit || f.Value.String() != ""
		case "mysql-lock":
			if f.Value.String() != contract.LockAuto && f.Value.String() != contract.LockNone {
				m.opts.Explicit = true
			}
		}
	})
	if err := m.opts.Validate(); err != nil {
		return m.opts, err
	}
	return m.opts, nil
}

func (c *command) version(ctx context.Context, args []string) error {
	fs := c.flagSet()
	if err := c.parse(fs, args); err != nil {
		return err
	}
	// Recovery on every invocation, but never create the state dir just for this.
	if dir := state.Resolve(""); dirExists(dir) {
		if d, err := openStateDir(dir); err == nil {
			_, _ = newAgent(d, c.log).Recover(ctx, "")
		}
	}
	fmt.Fprintf(c.stdout, "hostagent %s\n", buildinfo.String())
	c.printed = true
	return nil
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
