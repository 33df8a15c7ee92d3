package mysqllock

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/agenterr"
)

// Options are the MySQL flags of `hostagent freeze` / `check`.
type Options struct {
	Mode         string // auto | ftwrl | backup-stage | instance | replica | none
	DefaultsFile string // option file with a [client] (or [quiesce]) group
	Socket       string // overrides the defaults file
	User         string // overrides the defaults file; default root
	// Explicit is true when any MySQL option was given on the command line:
	// MySQL is then "named" and failing to lock is an error, never `none`.
	Explicit bool
	// LockWait bounds the wait for the lock (session lock_wait_timeout).
	LockWait time.Duration
	// LongQueryLimit: statements running longer than this make Acquire refuse
	// (or, with KillLongQueries, kill them) before locking. 0 disables the check.
	LongQueryLimit  time.Duration
	KillLongQueries bool
}

// Limits on the durations; the upper bound of LockWait matches --timeout's.
const (
	MaxLockWait       = 10 * time.Minute
	MaxLongQueryLimit = 24 * time.Hour
)

// socketPaths are where `auto` looks for a local server when no MySQL option
// was given (Debian/Ubuntu, older layouts, RHEL/Amazon Linux, upstream default).
var socketPaths = []string{
	"/run/mysqld/mysqld.sock",
	"/var/run/mysqld/mysqld.sock",
	"/var/lib/mysql/mysql.sock",
	"/tmp/mysql.sock",
}

// String never shows a password (Options holds none; the defaults file is a path).
func (o Options) String() string {
	return fmt.Sprintf("mode=%s defaults_file=%q socket=%q user=%q explicit=%t lock_wait=%s long_query_limit=%s kill_long_queries=%t",
		o.Mode, o.DefaultsFile, o.Socket, o.User, o.Explicit, o.LockWait, o.LongQueryLimit, o.KillLongQueries)
}

// LogValue makes slog print the options as a group.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("mode", o.Mode),
		slog.String("defaults_file", o.DefaultsFile),
		slog.String("socket", o.Socket),
		slog.String("user", o.User),
		slog.Bool("explicit", o.Explicit),
		slog.Duration("lock_wait", o.LockWait),
		slog.Duration("long_query_limit", o.LongQueryLimit),
		slog.Bool("kill_long_queries", o.KillLongQueries),
	)
}

func knownMode(m string) bool {
	switch m {
	case contract.LockAuto, contract.LockFTWRL, contract.LockBackupStage, contract.LockInstance, contract.LockReplica, contract.LockNone:
		return true
	}
	return false
}

// Validate checks the options without contacting the server. Every error
// wraps contract.ErrUsage and names the bad value.
func (o Options) Validate() error {
	if !knownMode(o.Mode) {
		return agenterr.Usagef("--mysql-lock %s: want auto, ftwrl, backup-stage, instance, replica or none", agenterr.Quote(o.Mode))
	}
	if o.LockWait <= 0 || o.LockWait > MaxLockWait {
		return agenterr.Usagef("--lock-wait %s: must be > 0 and at most %s", o.LockWait, MaxLockWait)
	}
	if o.LongQueryLimit < 0 || o.LongQueryLimit > MaxLongQueryLimit {
		return agenterr.Usagef("--long-query-limit %s: must be between 0 (off) and %s", o.LongQueryLimit, MaxLongQueryLimit)
	}
	if o.KillLongQueries && o.LongQueryLimit == 0 {
		return agenterr.Usagef("--kill-long-queries needs --long-query-limit > 0")
	}
	if o.Socket != "" && !filepath.IsAbs(o.Socket) {
		return agenterr.Usagef("--mysql-socket %s: must be an absolute path", agenterr.Quote(o.Socket))
	}
	if o.DefaultsFile != "" {
		if !filepath.IsAbs(o.DefaultsFile) {
			return agenterr.Usagef("--mysql-defaults-file %s: must be an absolute path", agenterr.Quote(o.DefaultsFile))
		}
		co, err := readDefaultsFile(o.DefaultsFile)
		if err != nil {
			return agenterr.Usagef("--mysql-defaults-file %s: %v", o.DefaultsFile, err)
		}
		if co.Socket != "" && !filepath.IsAbs(co.Socket) {
			return agenterr.Usagef("--mysql-defaults-file %s: socket %q must be an absolute path", o.DefaultsFile, co.Socket)
		}
	}
	return nil
}

// named reports whether the operator pointed at MySQL in any way.
func (o Options) named() bool {
	return o.Explicit || o.DefaultsFile != "" || o.Socket != "" || o.User != ""
}

// Resolve decides whether MySQL is involved at all. `auto` with no MySQL
// option and no server socket at the usual paths means `none` (a host without
// a database, crash-consistent snapshot); any other mode, or `auto` once MySQL
// is named or a socket exists, involves MySQL and must then lock or fail.
// The concrete lock for `auto` is chosen after connecting (see the package doc).
func Resolve(o Options) (Options, bool) {
	switch o.Mode {
	case contract.LockNone:
		return o, false
	case contract.LockAuto:
		if o.named() || findSocket() != "" {
			return o, true
		}
		o.Mode = contract.LockNone
		return o, false
	}
	return o, true
}

// staleAutoSocket: `auto`, MySQL not named, and the socket found at a usual
// path refuses connections. Nobody listens there (a server that crashed or
// was stopped without removing it; a running or starting server accepts or
// queues), so there is no database to lock: same as no socket at all. Any
// other failure, or any failure once MySQL is named, stays an error.
func staleAutoSocket(o Options, err error) bool {
	if err == nil || o.Mode != contract.LockAuto || o.named() || !errors.Is(err, syscall.ECONNREFUSED) {
		return false
	}
	slog.Warn("mysql: no server listens on the socket found at a usual path; treating --mysql-lock auto as none", "err", err)
	return true
}

func findSocket() string {
	for _, p := range socketPaths {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return p
		}
	}
	return ""
}
