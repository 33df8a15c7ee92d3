package mysqllock

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/quiesce/quiesce/contract"
)

// A scripted database/sql driver standing in for MySQL servers this machine
// cannot run (MySQL 5.7/8.0/8.4): each statement maps to a result or error.

type fakeResult struct {
	cols []string
	rows [][]driver.Value
	err  error
}

type fakeServer struct {
	mu      sync.Mutex
	answers map[string]fakeResult
	seen    []string
}

func (f *fakeServer) answer(q string) fakeResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, q)
	if r, ok := f.answers[q]; ok {
		return r
	}
	return fakeResult{err: &mysql.MySQLError{Number: 1064, Message: "fake: unexpected statement " + q}}
}

func (f *fakeServer) Connect(context.Context) (driver.Conn, error) { return fakeConn{f}, nil }
func (f *fakeServer) Driver() driver.Driver                        { return nil }

type fakeConn struct{ f *fakeServer }

func (c fakeConn) Prepare(string) (driver.Stmt, error) { return nil, fmt.Errorf("no prepare") }
func (c fakeConn) Close() error                        { return nil }
func (c fakeConn) Begin() (driver.Tx, error)           { return nil, fmt.Errorf("no tx") }
func (c fakeConn) ExecContext(_ context.Context, q string, _ []driver.NamedValue) (driver.Result, error) {
	r := c.f.answer(q)
	return driver.RowsAffected(0), r.err
}
func (c fakeConn) QueryContext(_ context.Context, q string, _ []driver.NamedValue) (driver.Rows, error) {
	r := c.f.answer(q)
	if r.err != nil {
		return nil, r.err
	}
	return &fakeRows{cols: r.cols, rows: r.rows}, nil
}

type fakeRows struct {
	cols []string
	rows [][]driver.Value
	i    int
}

func (r *fakeRows) Columns() []string { return r.cols }
func (r *fakeRows) Close() error      { return nil }
func (r *fakeRows) Next(dest []driver.Value) error {
	if r.i >= len(r.rows) {
		return io.EOF
	}
	copy(dest, r.rows[r.i])
	r.i++
	return nil
}

func fakeSession(t *testing.T, version string, logBin bool, answers map[string]fakeResult) (*session, *fakeServer) {
	f := &fakeServer{answers: answers}
	db := sql.OpenDB(f)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); db.Close() })
	si := parseVersion(version)
	si.LogBin = logBin
	si.FlushLogAtCommit = 1
	return &session{db: db, conn: conn, server: si}, f
}

func one(cols []string, vals ...driver.Value) fakeResult {
	return fakeResult{cols: cols, rows: [][]driver.Value{vals}}
}

var masterCols = []string{"File", "Position", "Binlog_Do_DB", "Binlog_Ignore_DB", "Executed_Gtid_Set"}

func TestMySQLPositionVariants(t *testing.T) {
	gtid := "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5,\n4E11FA47-71CA-11E1-9E33-C80AA9429562:1-9"
	wantGTID := strings.ReplaceAll(gtid, "\n", "")
	status := one(masterCols, "binlog.000042", "157", "", "", gtid)
	gtidRow := one([]string{"@@GLOBAL.gtid_executed"}, gtid)
	parseErr := fakeResult{err: &mysql.MySQLError{Number: 1064, Message: "syntax"}}
	tests := []struct {
		name, version string
		logBin        bool
		mode          string
		answers       map[string]fakeResult
		wantFile      string
		wantPos       uint64
		wantGTID      string
		wantFirst     string
	}{
		{"8.0 master status", "8.0.36", true, contract.LockFTWRL,
			map[string]fakeResult{"SHOW MASTER STATUS": status, "SELECT @@GLOBAL.gtid_executed": gtidRow},
			"binlog.000042", 157, wantGTID, "SHOW MASTER STATUS"},
		{"8.4 binary log status", "8.4.2", true, contract.LockFTWRL,
			map[string]fakeResult{"SHOW BINARY LOG STATUS": status, "SELECT @@GLOBAL.gtid_executed": gtidRow},
			"binlog.000042", 157, wantGTID, "SHOW BINARY LOG STATUS"},
		{"fork without the new syntax falls back", "8.3.0-fork", true, contract.LockFTWRL,
			map[string]fakeResult{"SHOW BINARY LOG STATUS": parseErr, "SHOW MASTER STATUS": status, "SELECT @@GLOBAL.gtid_executed": gtidRow},
			"binlog.000042", 157, wantGTID, "SHOW BINARY LOG STATUS"},
		{"binlog off: gtid only", "8.0.36", false, contract.LockFTWRL,
			map[string]fakeResult{"SELECT @@GLOBAL.gtid_executed": one([]string{"g"}, "")},
			"", 0, "", "SELECT @@GLOBAL.gtid_executed"},
		{"5.5 without gtid", "5.5.62-log", true, contract.LockFTWRL,
			map[string]fakeResult{"SHOW MASTER STATUS": one(masterCols[:4], "mysql-bin.000003", "107", "", ""),
				"SELECT @@GLOBAL.gtid_executed": {err: &mysql.MySQLError{Number: 1193, Message: "Unknown system variable"}}},
			"mysql-bin.000003", 107, "", "SHOW MASTER STATUS"},
		{"log bin on but no row", "8.0.36", true, contract.LockFTWRL,
			map[string]fakeResult{"SHOW MASTER STATUS": {cols: masterCols}, "SELECT @@GLOBAL.gtid_executed": gtidRow},
			"", 0, wantGTID, "SHOW MASTER STATUS"},
		{"instance: log_status", "8.0.36", true, contract.LockInstance,
			map[string]fakeResult{"SELECT LOCAL FROM performance_schema.log_status": one([]string{"LOCAL"},
				[]byte(`{"gtid_executed": "`+strings.ReplaceAll(gtid, "\n", `\n`)+`", "binary_log_file": "binlog.000007", "binary_log_position": 1234}`))},
			"binlog.000007", 1234, wantGTID, "SELECT LOCAL FROM performance_schema.log_status"},
		{"access denied leaves position empty", "8.0.36", true, contract.LockFTWRL,
			map[string]fakeResult{"SHOW MASTER STATUS": {err: &mysql.MySQLError{Number: 1227, Message: "Access denied; you need REPLICATION CLIENT"}}},
			"", 0, "", "SHOW MASTER STATUS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, f := fakeSession(t, tt.version, tt.logBin, tt.answers)
			var info contract.LockInfo
			if err := s.readPosition(context.Background(), tt.mode, &info, slog.Default()); err != nil {
				t.Fatal(err)
			}
			if info.BinlogFile != tt.wantFile || info.BinlogPos != tt.wantPos || info.GTIDExecuted != tt.wantGTID {
				t.Errorf("got %s:%d %q, want %s:%d %q", info.BinlogFile, info.BinlogPos, info.GTIDExecuted, tt.wantFile, tt.wantPos, tt.wantGTID)
			}
			if f.seen[0] != tt.wantFirst {
				t.Errorf("first statement %q, want %q", f.seen[0], tt.wantFirst)
			}
		})
	}
}

func TestMySQLPositionErrors(t *testing.T) {
	for name, answers := range map[string]map[string]fakeResult{
		"bad position": {"SHOW MASTER STATUS": one(masterCols, "binlog.000001", "x", "", "", "")},
		"server gone":  {"SHOW MASTER STATUS": {err: driver.ErrBadConn}},
		"other error":  {"SHOW MASTER STATUS": {err: &mysql.MySQLError{Number: 1146, Message: "doesn't exist"}}},
	} {
		s, _ := fakeSession(t, "8.0.36", true, answers)
		var info contract.LockInfo
		if err := s.readPosition(context.Background(), contract.LockFTWRL, &info, slog.Default()); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// innodb_flush_log_at_trx_commit != 1: the redo buffer is flushed under the
// lock before the position is read; with 1 it is not (no extra fsync).
func TestRedoFlushOnlyWhenLazy(t *testing.T) {
	answers := map[string]fakeResult{
		"FLUSH NO_WRITE_TO_BINLOG ENGINE LOGS": {},
		"SHOW MASTER STATUS":                   one(masterCols[:4], "b.000001", "4", "", ""),
		"SELECT @@GLOBAL.gtid_binlog_pos":      one([]string{"g"}, "0-1-1"),
	}
	for _, lazy := range []int64{0, 1, 2} {
		s, f := fakeSession(t, "10.11.6-MariaDB", true, answers)
		s.server.FlushLogAtCommit = lazy
		var info contract.LockInfo
		if err := s.readPosition(context.Background(), contract.LockBackupStage, &info, slog.Default()); err != nil {
			t.Fatal(err)
		}
		flushed := f.seen[0] == "FLUSH NO_WRITE_TO_BINLOG ENGINE LOGS"
		if flushed != (lazy != 1) {
			t.Errorf("flush_log_at_trx_commit=%d: flushed=%t (statements %q)", lazy, flushed, f.seen)
		}
		if info.GTIDExecuted != "0-1-1" || info.BinlogPos != 4 {
			t.Errorf("info %+v", info)
		}
	}
}

// The lock statements per mode, and how their errors are classified.
func TestLockStatementsAndErrors(t *testing.T) {
	tests := []struct {
		mode     string
		answers  map[string]fakeResult
		wantSeen []string
		lockWait bool // error wraps ErrLockWait
		wantErr  bool
	}{
		{contract.LockInstance, map[string]fakeResult{"LOCK INSTANCE FOR BACKUP": {}}, []string{"LOCK INSTANCE FOR BACKUP"}, false, false},
		{contract.LockInstance, map[string]fakeResult{"LOCK INSTANCE FOR BACKUP": {err: &mysql.MySQLError{Number: 1205, Message: "Lock wait timeout"}}},
			[]string{"LOCK INSTANCE FOR BACKUP"}, true, true},
		{contract.LockFTWRL, map[string]fakeResult{"FLUSH TABLES WITH READ LOCK": {err: &mysql.MySQLError{Number: 3024, Message: "max_execution_time"}}},
			[]string{"FLUSH TABLES WITH READ LOCK"}, true, true},
		{contract.LockFTWRL, map[string]fakeResult{"FLUSH TABLES WITH READ LOCK": {err: &mysql.MySQLError{Number: 1227, Message: "Access denied; you need RELOAD"}}},
			[]string{"FLUSH TABLES WITH READ LOCK"}, false, true},
		{contract.LockBackupStage, map[string]fakeResult{"BACKUP STAGE START": {}, "BACKUP STAGE BLOCK_COMMIT": {err: &mysql.MySQLError{Number: 1205, Message: "Lock wait timeout"}}},
			[]string{"BACKUP STAGE START", "BACKUP STAGE BLOCK_COMMIT"}, true, true},
		{contract.LockBackupStage, map[string]fakeResult{"BACKUP STAGE START": {err: &mysql.MySQLError{Number: 1969, Message: "max_statement_time"}}},
			[]string{"BACKUP STAGE START"}, true, true},
	}
	for _, tt := range tests {
		s, f := fakeSession(t, "8.0.36", true, tt.answers)
		err := s.lock(context.Background(), tt.mode, 5*time.Second)
		if (err != nil) != tt.wantErr || errors.Is(err, contract.ErrLockWait) != tt.lockWait {
			t.Errorf("%s %v: err %v, want err=%t lockWait=%t", tt.mode, tt.answers, err, tt.wantErr, tt.lockWait)
		}
		if strings.Join(f.seen, ";") != strings.Join(tt.wantSeen, ";") {
			t.Errorf("%s: statements %q, want %q", tt.mode, f.seen, tt.wantSeen)
		}
	}
}
