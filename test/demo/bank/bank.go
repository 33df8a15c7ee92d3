// Package bank is the demo's workload: a schema where money only moves
// between accounts (demo/bank.sql) and a writer doing transfer transactions
// continuously while timing every commit. The invariants a restored
// snapshot must satisfy (total intact, transfers log gap-free, every
// transfer reflected in both balances, binlog and InnoDB agreeing) are
// demo/bank-checks.sql, which hostagent verify runs.
package bank

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Tables are the bank's tables, in the order CHECK TABLE reports them.
var Tables = []string{"accounts", "bank_meta", "transfer_seq", "transfers"}

// SplitStatements splits a SQL script into statements: "--" comment lines are
// dropped and statements end with ";" at the end of a line. Enough for
// demo/bank.sql, which has no procedures or string literals holding ";\n".
func SplitStatements(script string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(script, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			stmt := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			out = append(out, stmt)
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// Load runs the schema script on one connection (it has a USE statement).
func Load(ctx context.Context, db *sql.DB, script string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("load bank schema: %w", err)
	}
	defer conn.Close()
	for _, stmt := range SplitStatements(script) {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("load bank schema: %q: %w", firstLine(stmt), err)
		}
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
