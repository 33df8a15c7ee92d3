package mysqllock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/agenterr"
)

// Lock mode `replica`: on a read-only replica, stop only the replication
// applier (SQL thread) of every channel instead of taking a global lock.
// The source's writers never wait (the receiver keeps fetching its binary
// log into the relay log), and the replica's readers never wait either.
// With the applier stopped the only writer of a read-only replica is gone,
// so the data is still, and the coordinates read afterwards (per channel
// and @@gtid_slave_pos / the executed GTID set) describe it exactly.
//
// `auto` never picks it; explicit `--mysql-lock replica` only, because it
// is as consistent as a global lock only under conditions the server cannot
// prove to us:
//   - read_only does not stop every local writer: users with SUPER (MySQL
//     without super_read_only) or READ_ONLY ADMIN (MariaDB; root has it)
//     still write, as do the event scheduler and, on MariaDB, temporary and
//     some system tables. A global lock blocks them; stopping the applier
//     does not.
//   - Non-transactional tables (MyISAM, Aria, CSV) written by the applier are
//     complete after it stops, but not flushed and closed as FTWRL does, so
//     the copy sees them as "not closed properly" and key blocks held back by
//     DELAY_KEY_WRITE are missing. InnoDB needs nothing more than the
//     filesystem freeze.
//
// Unlike a lock, the applier does not start again when our connection
// closes: the lock records the channels it stopped (LockInfo.Replication.
// StoppedAppliers) and RestartAppliers starts them from a new connection,
// so every fail-safe layer can undo this mode after the holder is gone.

// appliersPollInterval paces the waits for an applier to stop and for
// replicated temporary tables to be dropped.
const appliersPollInterval = 50 * time.Millisecond

// acquireReplica is Acquire for mode replica, on the connected session s:
// it refuses a server that is not a read-only replica (usage, exit 2),
// stops the running appliers within --lock-wait (exit 5 otherwise, after
// starting them again), reads the coordinates and returns the held Lock.
func (s *session) acquireReplica(ctx context.Context, o Options, info contract.LockInfo, log *slog.Logger) (*Lock, contract.LockInfo, error) {
	pctx, cancel := context.WithTimeout(ctx, stepTimeout)
	err := s.replicaPreconditions(pctx)
	cancel()
	if err != nil {
		s.close()
		return nil, info, err
	}
	started := time.Now()
	stopped, err := s.stopAppliers(ctx, o.LockWait, log)
	info.Replication = &contract.Replication{StoppedAppliers: stopped}
	if err == nil {
		info.AcquiredMS = float64(time.Since(started).Microseconds()) / 1000
		pctx, cancel := context.WithTimeout(ctx, stepTimeout)
		err = s.readPosition(pctx, contract.LockReplica, &info, log)
		if err == nil {
			err = s.addReplication(pctx, &info, log)
		}
		cancel()
	}
	if err != nil {
		s.undoReplica(o, stopped, log)
		return nil, info, err
	}
	log.Info("mysql replica appliers stopped", "acquired_ms", info.AcquiredMS, "stopped", fmt.Sprintf("%q", stopped),
		"binlog_file", info.BinlogFile, "binlog_pos", info.BinlogPos)
	return &Lock{s: s, mode: contract.LockReplica, id: s.id, appliers: stopped, opts: o}, info, nil
}

// replicaPreconditions refuses, as a usage error naming the reason, a
// server that is not a replica or is writable: on either, stopping the
// applier does not stop the writes.
func (s *session) replicaPreconditions(ctx context.Context) error {
	rows, err := s.replicaStatus(ctx)
	if err != nil {
		return fmt.Errorf("mysql lock replica: %w", err)
	}
	if len(rows) == 0 {
		return agenterr.Usagef("--mysql-lock replica: %s is not a replica (%s lists no channel); use backup-stage or ftwrl",
			s.server.short(), replicaStatusStatement(s.server))
	}
	var readOnly string
	if err := s.conn.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&readOnly); err != nil {
		return fmt.Errorf("mysql lock replica: read @@read_only: %w", err)
	}
	if readOnly == "0" || strings.EqualFold(readOnly, "OFF") {
		return agenterr.Usagef("--mysql-lock replica: the replica is writable (@@read_only=%s), so stopping its applier does not stop its writes; set read_only=1 or use backup-stage or ftwrl", readOnly)
	}
	return nil
}

// stopAppliers stops the SQL thread of every channel whose SQL thread runs
// and waits until each has stopped and no replicated temporary table is
// open, all within wait. It returns the channels it stopped (also on
// error, so that they can be started again).
//
// A statement-based replication stream can hold a temporary table between
// transactions, in the applier's session only: a copy taken then restarts
// without it and fails at the next statement that uses it. So while
// Slave_open_temp_tables (Replica_open_temp_tables) is not 0 the appliers
// are started again and the stop retried until the stream drops it.
func (s *session) stopAppliers(ctx context.Context, wait time.Duration, log *slog.Logger) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var stopped []string
	open := 0 // temporary tables the appliers held at the last look
	// fail: the bound running out while temporary tables keep the lock
	// waiting is said as that, whichever statement it cut short.
	fail := func(err error) error {
		if open > 0 && ctx.Err() != nil {
			err = fmt.Errorf("%d replicated temporary table(s) stayed open (then %w)", open, err)
		}
		return s.replicaWaitError(ctx, wait, err)
	}
	for attempt := 1; ; attempt++ {
		rows, err := s.replicaStatus(ctx)
		if err != nil {
			return stopped, fail(err)
		}
		for _, r := range rows {
			name := r.channelName()
			if r.sqlRunning() == "No" && !slices.Contains(stopped, name) {
				continue // stopped before us: stays stopped
			}
			if !slices.Contains(stopped, name) {
				stopped = append(stopped, name)
			}
			if _, err := s.conn.ExecContext(ctx, stopApplierStatement(s.server, name)); err != nil {
				return stopped, fail(fmt.Errorf("%s: %w", stopApplierStatement(s.server, name), err))
			}
		}
		if err := s.waitAppliersStopped(ctx, stopped); err != nil {
			return stopped, fail(err)
		}
		n, err := s.openTempTables(ctx)
		if err != nil {
			return stopped, fail(err)
		}
		if open = n; open == 0 {
			return stopped, nil
		}
		if attempt == 1 {
			log.Info("replicated temporary tables open with the applier stopped; letting it run on until they are dropped", "open", open)
		}
		if err := s.startAppliers(ctx, stopped); err != nil {
			return stopped, fail(err)
		}
		select {
		case <-ctx.Done():
			return stopped, &LockWaitError{Mode: contract.LockReplica, Wait: wait,
				Err: fmt.Errorf("%d replicated temporary table(s) stayed open", open)}
		case <-time.After(appliersPollInterval):
		}
	}
}

// replicaWaitError: a statement cut short by the --lock-wait bound is a
// lock wait (exit 5); anything else is a plain failure.
func (s *session) replicaWaitError(ctx context.Context, wait time.Duration, err error) error {
	if ctx.Err() != nil || isLockWaitTimeout(err) {
		return &LockWaitError{Mode: contract.LockReplica, Wait: wait, Err: err}
	}
	return fmt.Errorf("mysql lock replica: %w", err)
}

// waitAppliersStopped polls until every channel in names reports its SQL
// thread stopped. STOP waits for the thread itself (an event group in
// progress is finished, a parallel applier's workers drain), so this
// normally returns at the first look.
func (s *session) waitAppliersStopped(ctx context.Context, names []string) error {
	for {
		rows, err := s.replicaStatus(ctx)
		if err != nil {
			return err
		}
		var running []string
		for _, r := range rows {
			if slices.Contains(names, r.channelName()) && r.sqlRunning() != "No" {
				running = append(running, strconv.Quote(r.channelName()))
			}
		}
		if len(running) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("applier of channel(s) %s still running: %w", strings.Join(running, ", "), ctx.Err())
		case <-time.After(appliersPollInterval):
		}
	}
}

// openTempTables is the number of temporary tables the appliers hold.
func (s *session) openTempTables(ctx context.Context) (int, error) {
	rows, err := s.conn.QueryContext(ctx,
		"SHOW GLOBAL STATUS WHERE Variable_name IN ('Slave_open_temp_tables', 'Replica_open_temp_tables')")
	if err != nil {
		return 0, fmt.Errorf("replicated temporary tables: %w", err)
	}
	defer rows.Close()
	open := 0
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			return 0, fmt.Errorf("replicated temporary tables: %w", err)
		}
		open = max(open, n)
	}
	return open, rows.Err()
}

// quoteString renders s as an SQL string literal (a channel name).
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

func stopApplierStatement(si serverInfo, name string) string {
	return applierStatement(si, "STOP", name)
}

func startApplierStatement(si serverInfo, name string) string {
	return applierStatement(si, "START", name)
}

// applierStatement: MariaDB names the connection after SLAVE; MySQL takes
// FOR CHANNEL (5.7+) and spells it REPLICA from 8.0.22.
func applierStatement(si serverInfo, verb, name string) string {
	if si.MariaDB {
		return fmt.Sprintf("%s SLAVE %s SQL_THREAD", verb, quoteString(name))
	}
	word := "SLAVE"
	if replicaStatusStatement(si) == "SHOW REPLICA STATUS" {
		word = "REPLICA"
	}
	return fmt.Sprintf("%s %s SQL_THREAD FOR CHANNEL %s", verb, word, quoteString(name))
}

// startAppliers starts the SQL thread of each channel (a running one is
// left as it is: the server answers with a note), trying every channel even
// when one fails.
func (s *session) startAppliers(ctx context.Context, names []string) error {
	var errs []error
	for _, name := range names {
		stmt := startApplierStatement(s.server, name)
		if _, err := s.conn.ExecContext(ctx, stmt); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", stmt, err))
		}
	}
	return errors.Join(errs...)
}

// RunningAppliers lists the channels whose applier (SQL thread) runs now,
// from a new connection made with o. A caller that must never lose track of
// an applier records them before Acquire in mode replica: a process killed
// between Acquire's STOP and its own record of LockInfo.Replication.
// StoppedAppliers would otherwise leave them stopped with nobody knowing.
// The list can only be wider than what Acquire stops (a channel that stops
// in between), never narrower.
func RunningAppliers(ctx context.Context, o Options) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if o.LockWait <= 0 {
		o.LockWait = time.Second
	}
	s, err := connect(ctx, o)
	if err != nil {
		return nil, err
	}
	defer s.close()
	rows, err := s.replicaStatus(ctx)
	if err != nil {
		return nil, fmt.Errorf("mysql %s: %w", s.cfg, err)
	}
	running := []string{}
	for _, r := range rows {
		if r.sqlRunning() != "No" {
			running = append(running, r.channelName())
		}
	}
	return running, nil
}

// RestartAppliers starts again the SQL thread of the given channels (the
// Replication.StoppedAppliers of a replica-mode lock) from a new connection
// made with o: what every fail-safe layer calls when the holder that
// stopped them can no longer release. Idempotent: a running applier is left
// as it is. Bounded by ctx and at most 10 s. Channels not listed are never
// touched, so one that was stopped before the lock stays stopped.
func RestartAppliers(ctx context.Context, o Options, channels []string) error {
	if len(channels) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*releaseTimeout)
	defer cancel()
	if o.LockWait <= 0 {
		o.LockWait = time.Second
	}
	s, err := connect(ctx, o)
	if err != nil {
		return fmt.Errorf("restart replica appliers %q: %w", channels, err)
	}
	defer s.close()
	if err := s.startAppliers(ctx, channels); err != nil {
		return fmt.Errorf("restart replica appliers: %w", err)
	}
	slog.Info("mysql replica appliers started again", "channels", fmt.Sprintf("%q", channels), "connection_id", s.id)
	return nil
}

// releaseReplica is Release for mode replica: start the stopped appliers on
// the lock's connection, or from a new one when that connection broke.
func (l *Lock) releaseReplica(ctx context.Context) error {
	err := l.s.startAppliers(ctx, l.appliers)
	l.s.close()
	if err != nil && !isSQLError(err) {
		err = RestartAppliers(ctx, l.opts, l.appliers)
	}
	if err != nil {
		return fmt.Errorf("mysql release replica (connection %d): %w", l.id, err)
	}
	slog.Debug("mysql replica appliers started again", "channels", fmt.Sprintf("%q", l.appliers), "connection_id", l.id)
	return nil
}

// undoReplica starts again whatever a failed acquireReplica stopped, from a
// new connection if the session's own is unusable, and closes the session.
func (s *session) undoReplica(o Options, stopped []string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	err := s.startAppliers(ctx, stopped)
	s.close()
	if err != nil && !isSQLError(err) {
		err = RestartAppliers(context.Background(), o, stopped)
	}
	if err != nil {
		log.Error("mysql lock replica: could not start the stopped appliers again", "channels", fmt.Sprintf("%q", stopped), "err", err)
	}
}
