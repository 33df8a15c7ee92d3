package mysqllock

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/quiesce/quiesce/contract"
)

// statusRow is one row of SHOW REPLICA STATUS / SHOW ALL SLAVES STATUS by
// column name. The column set and order differ between servers and versions
// (MySQL 8.0.22 renamed Master to Source and Slave to Replica), so every
// field is looked up by name, newest spelling first.
type statusRow map[string]sql.NullString

func (r statusRow) str(names ...string) string {
	for _, n := range names {
		if v, ok := r[strings.ToLower(n)]; ok {
			return v.String
		}
	}
	return ""
}

func (r statusRow) uint(names ...string) uint64 {
	n, _ := strconv.ParseUint(r.str(names...), 10, 64)
	return n
}

func (r statusRow) int(names ...string) int {
	n, _ := strconv.Atoi(r.str(names...))
	return n
}

// nullableInt is nil for SQL NULL (or a column that is missing).
func (r statusRow) nullableInt(names ...string) *int64 {
	for _, n := range names {
		if v, ok := r[strings.ToLower(n)]; ok {
			if !v.Valid {
				return nil
			}
			i, err := strconv.ParseInt(v.String, 10, 64)
			if err != nil {
				return nil
			}
			return &i
		}
	}
	return nil
}

// replicaStatusStatement lists every channel: MariaDB's multi-source
// SHOW ALL SLAVES STATUS (10.0+, one row per connection, the default
// connection named ""), MySQL's SHOW REPLICA STATUS from 8.0.22 and SHOW
// SLAVE STATUS before (one row per channel in both).
func replicaStatusStatement(si serverInfo) string {
	switch {
	case si.MariaDB:
		return "SHOW ALL SLAVES STATUS"
	case si.Major > 8 || (si.Major == 8 && (si.Minor > 0 || si.Patch >= 22)):
		return "SHOW REPLICA STATUS"
	}
	return "SHOW SLAVE STATUS"
}

// replicaStatus reads every channel's status row; none on a server that is
// not a replica.
func (s *session) replicaStatus(ctx context.Context) ([]statusRow, error) {
	stmt := replicaStatusStatement(s.server)
	rows, err := s.conn.QueryContext(ctx, stmt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", stmt, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", stmt, err)
	}
	var out []statusRow
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("%s: %w", stmt, err)
		}
		row := make(statusRow, len(cols))
		for i, c := range cols {
			row[strings.ToLower(c)] = vals[i]
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", stmt, err)
	}
	return out, nil
}

// channelName: MariaDB's Connection_name, MySQL's Channel_Name (absent
// before 5.7: the one unnamed channel).
func (r statusRow) channelName() string { return r.str("Connection_name", "Channel_Name") }

func (r statusRow) sqlRunning() string { return r.str("Replica_SQL_Running", "Slave_SQL_Running") }

func (r statusRow) channel(gtidSlavePos string) contract.ReplicaChannel {
	c := contract.ReplicaChannel{
		Name:              r.channelName(),
		SourceHost:        r.str("Source_Host", "Master_Host"),
		SourcePort:        r.int("Source_Port", "Master_Port"),
		SourceUser:        r.str("Source_User", "Master_User"),
		SourceLogFile:     r.str("Relay_Source_Log_File", "Relay_Master_Log_File"),
		SourceLogPos:      r.uint("Exec_Source_Log_Pos", "Exec_Master_Log_Pos"),
		ReadSourceLogFile: r.str("Source_Log_File", "Master_Log_File"),
		ReadSourceLogPos:  r.uint("Read_Source_Log_Pos", "Read_Master_Log_Pos"),
		RelayLogFile:      r.str("Relay_Log_File"),
		RelayLogPos:       r.uint("Relay_Log_Pos"),
		GTIDReceived:      oneLine(r.str("Gtid_IO_Pos", "Retrieved_Gtid_Set")),
		IORunning:         r.str("Replica_IO_Running", "Slave_IO_Running"),
		SQLRunning:        r.sqlRunning(),
		SecondsBehind:     r.nullableInt("Seconds_Behind_Source", "Seconds_Behind_Master"),
		LastIOErrno:       r.int("Last_IO_Errno"),
		LastIOError:       r.str("Last_IO_Error"),
		LastSQLErrno:      r.int("Last_SQL_Errno"),
		LastSQLError:      r.str("Last_SQL_Error"),
	}
	if _, mariadb := r["using_gtid"]; mariadb {
		c.UsingGTID = r.str("Using_Gtid")
		c.GTID = gtidSlavePos
	} else {
		c.UsingGTID = "No"
		if r.str("Auto_Position") == "1" {
			c.UsingGTID = "auto-position"
		}
		c.GTID = oneLine(r.str("Executed_Gtid_Set"))
	}
	return c
}

// oneLine drops the newlines MySQL puts after the commas of a GTID set.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "") }

// readReplication reads every channel's coordinates; nil when the server is
// not a replica. On MariaDB the executed GTID state is @@gtid_slave_pos,
// read in the same statement round as the rows it goes with: it is one
// global value covering every connection's domains, updated in the same
// transaction as the replicated change, so under the lock it matches the
// data exactly.
func (s *session) readReplication(ctx context.Context) (*contract.Replication, error) {
	rows, err := s.replicaStatus(ctx)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	var slavePos string
	if s.server.MariaDB {
		if err := s.conn.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_slave_pos").Scan(&slavePos); err != nil {
			return nil, fmt.Errorf("read gtid_slave_pos: %w", err)
		}
	}
	r := &contract.Replication{Channels: make([]contract.ReplicaChannel, 0, len(rows))}
	for _, row := range rows {
		r.Channels = append(r.Channels, row.channel(slavePos))
	}
	return r, nil
}

// addReplication puts the replica coordinates on info, for every lock mode.
// As with the binary log position, a user who may lock but not read the
// replica status gets a held lock and an empty Replication with a warning
// (`hostagent check` names the missing privilege up front).
func (s *session) addReplication(ctx context.Context, info *contract.LockInfo, log *slog.Logger) error {
	r, err := s.readReplication(ctx)
	if err != nil && isAccessDenied(err) {
		log.Warn("mysql lock held but the replica status cannot be read; replication coordinates are left empty", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("mysql lock %s: read replication coordinates: %w", info.Mode, err)
	}
	if r != nil && info.Replication != nil {
		r.StoppedAppliers = info.Replication.StoppedAppliers
	}
	info.Replication = r
	return nil
}
