package mysqllock

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"
)

// Threads that are not client statements: idle connections, the server's
// own daemons, replication in both directions. They never block the lock.
const notStatements = `COMMAND NOT IN ('Sleep', 'Daemon', 'Binlog Dump', 'Binlog Dump GTID', 'Connect',
	'Register Slave', 'Slave_IO', 'Slave_SQL', 'Slave_worker')
	AND USER NOT IN ('system user', 'event_scheduler')`

// longQueries lists client statements running longer than limit, except our
// own. The limit applies to every statement, SELECTs included: on MySQL a
// long SELECT makes FLUSH TABLES WITH READ LOCK wait (and everyone behind
// it), and one rule for all servers and modes is easier to reason about than
// a per-mode list of what blocks what.
func (s *session) longQueries(ctx context.Context, limit time.Duration) ([]LongQuery, error) {
	// MariaDB has TIME_MS (fractional); MySQL only whole seconds in TIME.
	elapsed := "TIME * 1000"
	if s.server.MariaDB {
		elapsed = "TIME_MS"
	}
	q := fmt.Sprintf(`SELECT ID, COALESCE(USER, ''), COALESCE(HOST, ''), COMMAND, %s, LEFT(INFO, 200)
		FROM information_schema.PROCESSLIST
		WHERE ID <> CONNECTION_ID() AND INFO IS NOT NULL AND %s AND %s >= %d
		ORDER BY 5 DESC`, elapsed, notStatements, elapsed, limit.Milliseconds())
	rows, err := s.conn.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("mysql --long-query-limit: list running statements: %w", err)
	}
	defer rows.Close()
	var out []LongQuery
	for rows.Next() {
		var lq LongQuery
		var ms float64
		var info sql.NullString
		if err := rows.Scan(&lq.ID, &lq.User, &lq.Host, &lq.Command, &ms, &info); err != nil {
			return nil, err
		}
		lq.Time = time.Duration(ms * float64(time.Millisecond))
		lq.Query = truncate(info.String, 100)
		out = append(out, lq)
	}
	return out, rows.Err()
}

// handleLongQueries refuses (LongQueryError, exit 5) or, with
// KillLongQueries, kills the statements older than the limit. Killed
// statements may take a while to roll back; the lock then waits for them
// within --lock-wait like for any other statement.
func (s *session) handleLongQueries(ctx context.Context, o Options, log *slog.Logger) (killed []uint64, err error) {
	long, err := s.longQueries(ctx, o.LongQueryLimit)
	if err != nil || len(long) == 0 {
		return nil, err
	}
	if !o.KillLongQueries {
		return nil, &LongQueryError{Limit: o.LongQueryLimit, Queries: long}
	}
	for _, q := range long {
		_, err := s.conn.ExecContext(ctx, fmt.Sprintf("KILL QUERY %d", q.ID))
		if err != nil && sqlErrorNumber(err) != errNoSuchThread {
			return killed, fmt.Errorf("mysql --kill-long-queries: kill %s: %w", q, err)
		}
		killed = append(killed, q.ID)
		log.Warn("mysql: killed long-running statement before locking", "limit", o.LongQueryLimit,
			"thread_id", q.ID, "user", q.User, "host", q.Host, "running", q.Time.Round(time.Millisecond).String(), "query", q.Query)
	}
	return killed, nil
}
