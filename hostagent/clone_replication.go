package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/agenterr"
)

// sqlStmt is one statement; args are interpolated on the client, escaped.
type sqlStmt struct {
	query string
	args  []any
}

// replicaDialect is how a server spells the replication statements.
type replicaDialect struct {
	mariaDB bool
	// sourceSyntax: MySQL >= 8.0.23 (CHANGE REPLICATION SOURCE, REPLICA).
	sourceSyntax bool
}

// resetStatements stop any replication and forget every channel: the old
// stream of a replica's snapshot (relay logs included) must not resume.
func (d replicaDialect) resetStatements(mariaDBConnections []string) []sqlStmt {
	switch {
	case d.mariaDB:
		out := []sqlStmt{{query: "STOP ALL SLAVES"}}
		if !slices.Contains(mariaDBConnections, "") {
			mariaDBConnections = append([]string{""}, mariaDBConnections...)
		}
		for _, name := range mariaDBConnections {
			out = append(out, sqlStmt{query: "RESET SLAVE ? ALL", args: []any{name}})
		}
		return out
	case d.sourceSyntax:
		return []sqlStmt{{query: "STOP REPLICA"}, {query: "RESET REPLICA ALL"}}
	}
	return []sqlStmt{{query: "STOP SLAVE"}, {query: "RESET SLAVE ALL"}}
}

// pointStatements point the default channel at the source from the
// coordinates and start it. MariaDB takes the GTID state as gtid_slave_pos;
// MySQL's auto-position starts from the clone's own gtid_executed, which the
// snapshot carries.
func (d replicaDialect) pointStatements(in cloneInput) []sqlStmt {
	word, host := "MASTER", "MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?"
	change, start := "CHANGE MASTER TO ", "START SLAVE"
	if d.sourceSyntax {
		word, host = "SOURCE", "SOURCE_HOST=?, SOURCE_PORT=?, SOURCE_USER=?, SOURCE_PASSWORD=?"
		change, start = "CHANGE REPLICATION SOURCE TO ", "START REPLICA"
	}
	args := []any{in.sourceHost, in.sourcePort, in.creds.User, string(in.creds.Password)}
	var out []sqlStmt
	q := change + host
	switch {
	case in.coords.Mode == contract.CloneByGTID && d.mariaDB:
		out = append(out, sqlStmt{query: "SET GLOBAL gtid_slave_pos = ?", args: []any{in.coords.GTID}})
		q += ", MASTER_USE_GTID=slave_pos"
	case in.coords.Mode == contract.CloneByGTID:
		q += ", " + word + "_AUTO_POSITION=1"
	default:
		q += ", " + word + "_LOG_FILE=?, " + word + "_LOG_POS=?"
		args = append(args, in.coords.LogFile, in.coords.LogPos)
		if d.mariaDB {
			q += ", MASTER_USE_GTID=no"
		}
	}
	return append(out, sqlStmt{query: q, args: args}, sqlStmt{query: start})
}

// configure gives the running clone its identity (server_id, read_only),
// forgets the old replication and points it at the source.
func (cl *cloner) configure(ctx context.Context) error {
	return cl.timed("configure", func() error {
		if err := cl.identity(ctx); err != nil {
			return err
		}
		d := replicaDialect{mariaDB: cl.client.MariaDB(), sourceSyntax: cl.client.MySQLAtLeast(8, 0, 23)}
		var names []string
		if d.mariaDB {
			r, err := cl.client.Replication(ctx)
			if err != nil {
				return err
			}
			if r != nil {
				for _, ch := range r.Channels {
					names = append(names, ch.Name)
				}
			}
		}
		if err := cl.exec(ctx, d.resetStatements(names)); err != nil {
			return err
		}
		if err := cl.exec(ctx, d.pointStatements(cl.in)); err != nil {
			cl.problem("replication not configured: %v", err)
		}
		return nil
	})
}

// identity sets and checks the clone's server_id and makes it read-only.
func (cl *cloner) identity(ctx context.Context) error {
	stmts := []sqlStmt{{query: "SET GLOBAL read_only = 1"}}
	if cl.in.serverID != 0 && cl.in.startCmd != "" {
		stmts = append(stmts, sqlStmt{query: "SET GLOBAL server_id = ?", args: []any{cl.in.serverID}})
		cl.rep.Notes = append(cl.rep.Notes, fmt.Sprintf("server_id %d was set at run time: put server_id=%d in the server's configuration so a restart keeps it", cl.in.serverID, cl.in.serverID))
	}
	if err := cl.exec(ctx, stmts); err != nil {
		return err
	}
	var readOnly int
	if err := cl.client.Conn().QueryRowContext(ctx, "SELECT @@GLOBAL.server_id, @@GLOBAL.read_only").Scan(&cl.rep.ServerID, &readOnly); err != nil {
		return fmt.Errorf("read server_id: %w", err)
	}
	cl.rep.ReadOnly = readOnly == 1
	if slices.Contains(cl.in.avoidIDs, cl.rep.ServerID) {
		return agenterr.Usagef("the clone's server_id is %d, the source's (--source-server-id): give it one of its own with --server-id or in its configuration", cl.rep.ServerID)
	}
	return nil
}

// exec runs statements in order; an error never carries the password.
func (cl *cloner) exec(ctx context.Context, stmts []sqlStmt) error {
	for _, s := range stmts {
		if _, err := cl.client.Conn().ExecContext(ctx, s.query, s.args...); err != nil {
			return fmt.Errorf("%s: %s", s.query, cl.redact(err.Error()))
		}
	}
	return nil
}

func (cl *cloner) redact(s string) string {
	if pw := string(cl.in.creds.Password); pw != "" {
		s = strings.ReplaceAll(s, pw, "[redacted]")
	}
	return s
}

// fatalIOErrnos are receiver errors no retry mends: access denied, the
// host or privilege refused, the source cannot serve these coordinates,
// a fatal error such as equal server ids.
var fatalIOErrnos = []int{1045, 1130, 1227, 1236, 1593, 1595}

// awaitReplication waits until both threads run without error. A thread
// stopped with an error, or a receiver error no retry mends, fails at once;
// anything else (the source not reachable yet) is waited on until --timeout,
// then fails with the last state.
func (cl *cloner) awaitReplication(ctx context.Context) error {
	return cl.timed("replicating", func() error {
		for {
			r, err := cl.client.Replication(ctx)
			if err != nil && ctx.Err() == nil {
				return err
			}
			if ch, ok := r.DefaultChannel(); ok {
				cl.rep.Replica = &ch
				switch replicaVerdict(ch) {
				case verdictRunning:
					return nil
				case verdictFailed:
					cl.problem("replication will not start: %s", describeChannel(ch))
					return nil
				}
			}
			select {
			case <-ctx.Done():
				if errors.Is(ctx.Err(), context.DeadlineExceeded) && cl.rep.Replica != nil {
					cl.problem("replication not running within --timeout: %s", describeChannel(*cl.rep.Replica))
					return nil
				}
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
}

type verdict int

const (
	verdictWaiting verdict = iota
	verdictRunning
	verdictFailed
)

// replicaVerdict judges one status row. A receiver that runs (Yes) is
// connected now, whatever error an earlier attempt left in Last_IO_Error
// (servers do not all clear it on a reconnect); an applier error is not
// history, since the applier stops on it.
func replicaVerdict(ch contract.ReplicaChannel) verdict {
	switch {
	case ch.IORunning == "Yes" && ch.SQLRunning == "Yes" && ch.LastSQLErrno == 0:
		return verdictRunning
	case ch.SQLRunning == "No" && ch.LastSQLErrno != 0, ch.IORunning == "No" && ch.LastIOErrno != 0:
		return verdictFailed
	case slices.Contains(fatalIOErrnos, ch.LastIOErrno):
		return verdictFailed
	}
	return verdictWaiting
}

func describeChannel(ch contract.ReplicaChannel) string {
	s := fmt.Sprintf("IO thread %s, SQL thread %s", ch.IORunning, ch.SQLRunning)
	if ch.LastIOErrno != 0 {
		s += fmt.Sprintf("; IO error %d: %s", ch.LastIOErrno, ch.LastIOError)
	}
	if ch.LastSQLErrno != 0 {
		s += fmt.Sprintf("; SQL error %d: %s", ch.LastSQLErrno, ch.LastSQLError)
	}
	return s
}
