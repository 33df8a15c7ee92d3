package restore

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/quiesce/quiesce/contract"
)

// systemSchemas are not checked: the server's own, rebuilt or virtual.
var systemSchemas = []string{"mysql", "sys", "information_schema", "performance_schema"}

// BaseTables lists every base table outside the system schemas as
// `schema`.`table`, sorted. MariaDB reports system-versioned tables with
// their own table type; they are base tables too.
func BaseTables(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')
		AND TABLE_SCHEMA NOT IN ('`+strings.Join(systemSchemas, "','")+`')
		ORDER BY TABLE_SCHEMA, TABLE_NAME`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var schema, name string
		if err := rows.Scan(&schema, &name); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		out = append(out, quoteIdent(schema)+"."+quoteIdent(name))
	}
	return out, rows.Err()
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// ErrServerGone: the server stopped answering (it crashed) during the checks.
var ErrServerGone = errors.New("server went away")

// CheckTables runs CHECK TABLE on each table and returns the failures. A
// table passes when its last status row says OK (or "up to date") and no row
// is an error. When the server dies (a corrupt page can crash it) the table
// being checked is failed and ErrServerGone returned.
func CheckTables(ctx context.Context, db *sql.DB, tables []string) ([]contract.TableFailure, error) {
	var failed []contract.TableFailure
	for _, t := range tables {
		msg, ok, err := checkTable(ctx, db, t)
		if err != nil {
			if ctx.Err() != nil { // cancelled: says nothing about the table
				return failed, ctx.Err()
			}
			failed = append(failed, contract.TableFailure{Table: t, Message: err.Error()})
			if gone(err) {
				return failed, fmt.Errorf("CHECK TABLE %s: %w: %v", t, ErrServerGone, err)
			}
			continue
		}
		if !ok {
			failed = append(failed, contract.TableFailure{Table: t, Message: msg})
		}
	}
	return failed, nil
}

func gone(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return false // the server answered
	}
	return true
}

func checkTable(ctx context.Context, db *sql.DB, table string) (string, bool, error) {
	rows, err := db.QueryContext(ctx, "CHECK TABLE "+table)
	if err != nil {
		return "", false, err
	}
	defer rows.Close()
	var msgs []string
	ok, sawStatus := true, false
	for rows.Next() {
		var name, op, typ, text sql.NullString
		if err := rows.Scan(&name, &op, &typ, &text); err != nil {
			return "", false, err
		}
		kind := strings.ToLower(typ.String)
		switch kind {
		case "status":
			sawStatus = true
			t := strings.ToLower(text.String)
			if t != "ok" && t != "table is already up to date" {
				ok = false
			}
		case "error":
			ok = false
		}
		msgs = append(msgs, kind+": "+text.String)
	}
	if err := rows.Err(); err != nil {
		return "", false, err
	}
	return strings.Join(msgs, "; "), ok && sawStatus, nil
}

// ServerGTID reads the server's GTID state: @@gtid_binlog_pos on MariaDB
// (what the binary log holds, the same variable the freeze read), else
// @@gtid_executed.
func ServerGTID(ctx context.Context, db *sql.DB, version string) (string, error) {
	q := "SELECT @@GLOBAL.gtid_executed"
	if strings.Contains(strings.ToLower(version), "mariadb") {
		q = "SELECT @@GLOBAL.gtid_binlog_pos"
	}
	var v sql.NullString
	if err := db.QueryRowContext(ctx, q).Scan(&v); err != nil {
		return "", fmt.Errorf("read GTID state: %w", err)
	}
	return strings.ReplaceAll(v.String, "\n", ""), nil
}

// SameGTID compares two GTID states as sets of comma-separated entries
// (MariaDB domain-server-seq per domain, MySQL uuid:intervals), ignoring
// order, spaces and case.
func SameGTID(a, b string) bool { return normGTID(a) == normGTID(b) }

func normGTID(s string) string {
	var parts []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.ToLower(strings.Join(strings.Fields(p), "")); p != "" {
			parts = append(parts, p)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// SplitStatements splits an operator's check file into statements: each
// ends with a line ending in ';' (a ';' alone on a line too). Lines starting
// with "--" or "#" are comments. A last statement without ';' counts.
func SplitStatements(r io.Reader) ([]string, error) {
	var out []string
	var cur []string
	flush := func() {
		if s := strings.TrimSpace(strings.Join(cur, "\n")); s != "" {
			out = append(out, s)
		}
		cur = nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasSuffix(trimmed, ";") {
			cur = append(cur, strings.TrimSuffix(line, ";"))
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return out, sc.Err()
}

// RunCheck runs one operator statement: it passes when it returns exactly
// one row whose first column is true (non-zero, or "true").
func RunCheck(ctx context.Context, db *sql.DB, stmt string) contract.SQLCheck {
	c := contract.SQLCheck{SQL: stmt}
	rows, err := db.QueryContext(ctx, stmt)
	if err != nil {
		c.Got = "error: " + err.Error()
		return c
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil || len(cols) == 0 {
		c.Got = fmt.Sprintf("error: no columns (%v)", err)
		return c
	}
	n := 0
	var first sql.NullString
	for rows.Next() {
		n++
		if n > 1 {
			continue
		}
		vals := make([]any, len(cols))
		vals[0] = &first
		for i := 1; i < len(cols); i++ {
			vals[i] = new(sql.RawBytes)
		}
		if err := rows.Scan(vals...); err != nil {
			c.Got = "error: " + err.Error()
			return c
		}
	}
	if err := rows.Err(); err != nil {
		c.Got = "error: " + err.Error()
		return c
	}
	switch {
	case n == 0:
		c.Got = "no rows"
	case n > 1:
		c.Got = fmt.Sprintf("%d rows", n)
	case !first.Valid:
		c.Got = "NULL"
	default:
		c.Got = first.String
		c.OK = truthy(first.String)
	}
	return c
}

func truthy(v string) bool {
	if strings.EqualFold(strings.TrimSpace(v), "true") {
		return true
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	return err == nil && f != 0
}
