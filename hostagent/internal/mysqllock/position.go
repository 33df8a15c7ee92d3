package mysqllock

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/quiesce/quiesce/contract"
)

// Access-denied errors while reading the position: the lock itself is fine
// and the snapshot consistent, so the position is left empty with a warning
// (`hostagent check` reports the missing privilege up front).
const (
	errSpecificAccessDenied  = 1227
	errTableAccessDenied     = 1142
	errDBAccessDenied        = 1044
	errUnknownSystemVariable = 1193
)

func isAccessDenied(err error) bool {
	switch sqlErrorNumber(err) {
	case errSpecificAccessDenied, errTableAccessDenied, errDBAccessDenied:
		return true
	}
	return false
}

// readPosition reads, under the lock, the binary log coordinates and GTID
// state that match the data the freeze will capture.
//
// If innodb_flush_log_at_trx_commit is not 1, transactions committed (and
// written to the binary log) may still sit in InnoDB's in-memory redo
// buffer, which a filesystem freeze cannot capture; FLUSH ENGINE LOGS writes
// and syncs it first, so the data agrees with the position.
func (s *session) readPosition(ctx context.Context, mode string, info *contract.LockInfo, log *slog.Logger) error {
	if s.server.FlushLogAtCommit != 1 && mode != contract.LockInstance {
		if _, err := s.conn.ExecContext(ctx, "FLUSH NO_WRITE_TO_BINLOG ENGINE LOGS"); err != nil {
			return fmt.Errorf("mysql lock %s: flush InnoDB redo (innodb_flush_log_at_trx_commit=%d): %w", mode, s.server.FlushLogAtCommit, err)
		}
	}
	var err error
	switch {
	case mode == contract.LockInstance:
		err = s.readLogStatus(ctx, info)
	case s.server.MariaDB:
		err = s.readMariaDBPosition(ctx, info)
	default:
		err = s.readMySQLPosition(ctx, info)
	}
	if err != nil && isAccessDenied(err) {
		log.Warn("mysql lock held but the binlog position cannot be read; it is left empty", "err", err)
		info.BinlogFile, info.BinlogPos, info.GTIDExecuted = "", 0, ""
		return nil
	}
	if err != nil {
		return fmt.Errorf("mysql lock %s: read binlog position: %w", mode, err)
	}
	return nil
}

// MariaDB: with the binary log on, @@gtid_binlog_pos is the GTID of the last
// event written to the binary log, i.e. exactly the state that SHOW MASTER
// STATUS's file/position points after; @@gtid_current_pos also folds in
// gtid_slave_pos (transactions a replica applied without logging them), which
// would not match the file/position pair. With the binary log off there is no
// file/position, and @@gtid_current_pos (= the replicated state of a replica)
// is what a restored copy would resume from.
func (s *session) readMariaDBPosition(ctx context.Context, info *contract.LockInfo) error {
	if !s.server.LogBin {
		return s.conn.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_current_pos").Scan(&info.GTIDExecuted)
	}
	if err := s.showBinlogStatus(ctx, "SHOW MASTER STATUS", info); err != nil {
		return err
	}
	return s.conn.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&info.GTIDExecuted)
}

// MySQL: SHOW BINARY LOG STATUS from 8.2 (SHOW MASTER STATUS is gone in 8.4),
// SHOW MASTER STATUS before; try the other on a syntax error, since version
// strings of forks do not always tell. gtid_executed is meaningful with or
// without the binary log (8.0 persists it in mysql.gtid_executed).
func (s *session) readMySQLPosition(ctx context.Context, info *contract.LockInfo) error {
	if s.server.LogBin {
		first, second := "SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"
		if s.server.atLeast(8, 2) {
			first, second = second, first
		}
		if err := s.showBinlogStatus(ctx, first, info); err != nil {
			if sqlErrorNumber(err) != 1064 { // ER_PARSE_ERROR
				return err
			}
			if err := s.showBinlogStatus(ctx, second, info); err != nil {
				return err
			}
		}
	}
	var gtid sql.NullString
	if err := s.conn.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_executed").Scan(&gtid); err != nil {
		if sqlErrorNumber(err) == errUnknownSystemVariable { // MySQL < 5.6: no GTIDs
			return nil
		}
		return err
	}
	info.GTIDExecuted = strings.ReplaceAll(gtid.String, "\n", "")
	return nil
}

// showBinlogStatus reads File and Position by column name (the column set
// differs between servers and versions). No row means the log is off.
func (s *session) showBinlogStatus(ctx context.Context, stmt string, info *contract.LockInfo) error {
	rows, err := s.conn.QueryContext(ctx, stmt)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	if !rows.Next() {
		return rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return err
	}
	for i, c := range cols {
		switch strings.ToLower(c) {
		case "file":
			info.BinlogFile = vals[i].String
		case "position":
			pos, err := strconv.ParseUint(vals[i].String, 10, 64)
			if err != nil {
				return fmt.Errorf("%s: position %q: %w", stmt, vals[i].String, err)
			}
			info.BinlogPos = pos
		}
	}
	return rows.Err()
}

// readLogStatus: under LOCK INSTANCE FOR BACKUP, performance_schema.log_status
// gives the binary log coordinates and gtid_executed as one consistent
// snapshot (it blocks log rotation and commits while it collects them).
func (s *session) readLogStatus(ctx context.Context, info *contract.LockInfo) error {
	var local []byte
	if err := s.conn.QueryRowContext(ctx, "SELECT LOCAL FROM performance_schema.log_status").Scan(&local); err != nil {
		return err
	}
	var ls struct {
		GTIDExecuted string `json:"gtid_executed"`
		File         string `json:"binary_log_file"`
		Position     uint64 `json:"binary_log_position"`
	}
	if err := json.Unmarshal(local, &ls); err != nil {
		return fmt.Errorf("performance_schema.log_status LOCAL: %w", err)
	}
	info.BinlogFile, info.BinlogPos = ls.File, ls.Position
	info.GTIDExecuted = strings.ReplaceAll(ls.GTIDExecuted, "\n", "")
	return nil
}
