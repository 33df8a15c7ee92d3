package mysqllock

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/quiesce/quiesce/contract"
)

// Server error numbers we branch on.
const (
	errLockWaitTimeout  = 1205 // ER_LOCK_WAIT_TIMEOUT (also BACKUP STAGE's MDL waits)
	errQueryInterrupted = 1317 // ER_QUERY_INTERRUPTED: our watchdog's KILL QUERY
	errStatementTimeout = 1969 // MariaDB ER_STATEMENT_TIMEOUT (max_statement_time)
	errMySQLExecTimeout = 3024 // MySQL ER_QUERY_TIMEOUT (max_execution_time)
	errNoSuchThread     = 1094 // ER_NO_SUCH_THREAD: KILL of a gone connection
)

// LockWaitError: the lock was not acquired within --lock-wait. It matches
// contract.ErrLockWait (exit 5) and the server's error.
type LockWaitError struct {
	Mode string
	Wait time.Duration
	Err  error
}

func (e *LockWaitError) Error() string {
	return fmt.Sprintf("mysql lock %s not acquired within %s: %v", e.Mode, e.Wait, e.Err)
}

func (e *LockWaitError) Unwrap() []error { return []error{contract.ErrLockWait, e.Err} }

// LongQuery is a statement that ran longer than --long-query-limit.
type LongQuery struct {
	ID      uint64
	User    string
	Host    string
	Command string
	Time    time.Duration
	Query   string // truncated
}

func (q LongQuery) String() string {
	return fmt.Sprintf("thread %d (%s@%s, %s for %s): %q", q.ID, q.User, q.Host, q.Command, q.Time.Round(100*time.Millisecond), q.Query)
}

// LongQueryError: statements older than --long-query-limit run, so taking the
// lock would wait behind them while blocking every writer. Matches
// contract.ErrLockWait (exit 5).
type LongQueryError struct {
	Limit   time.Duration
	Queries []LongQuery
}

func (e *LongQueryError) Error() string {
	parts := make([]string, 0, len(e.Queries))
	for _, q := range e.Queries {
		parts = append(parts, q.String())
	}
	return fmt.Sprintf("mysql lock refused: %d statement(s) running longer than --long-query-limit %s (use --kill-long-queries to kill them): %s",
		len(e.Queries), e.Limit, strings.Join(parts, "; "))
}

func (e *LongQueryError) Unwrap() error { return contract.ErrLockWait }

func sqlErrorNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// isSQLError: the server answered with an error, so the connection itself is fine.
func isSQLError(err error) bool { return sqlErrorNumber(err) != 0 }

func isLockWaitTimeout(err error) bool {
	switch sqlErrorNumber(err) {
	case errLockWaitTimeout, errQueryInterrupted, errStatementTimeout, errMySQLExecTimeout:
		return true
	}
	return false
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
