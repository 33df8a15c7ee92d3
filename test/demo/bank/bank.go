// Package bank is the demo's workload and its proof: a schema where money only
// moves between accounts (demo/bank.sql), a writer doing transfer transactions
// continuously while timing every commit, and the invariants a restored
// snapshot must satisfy (total intact, transfers log gap-free, every transfer
// reflected in both balances, tables pass CHECK TABLE).
package bank

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
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

// Gap is a run of missing ids [From, To] in the transfers log.
type Gap struct{ From, To int64 }

func (g Gap) String() string {
	if g.From == g.To {
		return fmt.Sprint(g.From)
	}
	return fmt.Sprintf("%d..%d", g.From, g.To)
}

// FindGaps returns the ids missing from 1..max(ids), and ids that appear more
// than once or are < 1 (a log that is gap-free has ids exactly 1..len(ids)).
// ids need not be sorted.
func FindGaps(ids []int64) (gaps []Gap, bad []int64) {
	sorted := append([]int64(nil), ids...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	next := int64(1)
	for i, id := range sorted {
		switch {
		case id < 1:
			bad = append(bad, id)
			continue
		case i > 0 && id == sorted[i-1]:
			bad = append(bad, id)
			continue
		case id > next:
			gaps = append(gaps, Gap{next, id - 1})
		}
		next = id + 1
	}
	return gaps, bad
}

// Invariants is what a consistency check found.
type Invariants struct {
	Accounts      int64
	ExpectedTotal int64
	Total         int64
	Transfers     int64
	MaxID         int64
	SeqLastID     int64
	Gaps          []Gap
	BadIDs        []int64
	// Mismatched accounts: balance ≠ opening − sent + received (first few).
	Mismatched []string
	// CheckTable holds "table: Msg_type Msg_text" for every non-OK CHECK TABLE row.
	CheckTable []string
}

// Problems lists every violated invariant, one line each; empty means sound.
func (inv Invariants) Problems() []string {
	var p []string
	if inv.Total != inv.ExpectedTotal {
		p = append(p, fmt.Sprintf("money total %d, want %d (difference %d)", inv.Total, inv.ExpectedTotal, inv.Total-inv.ExpectedTotal))
	}
	if len(inv.Gaps) > 0 {
		var s []string
		for i, g := range inv.Gaps {
			if i == 5 {
				s = append(s, fmt.Sprintf("… %d more", len(inv.Gaps)-5))
				break
			}
			s = append(s, g.String())
		}
		p = append(p, "transfers log has gaps: missing ids "+strings.Join(s, ", "))
	}
	if len(inv.BadIDs) > 0 {
		p = append(p, fmt.Sprintf("transfers log has duplicate or invalid ids: %v", inv.BadIDs))
	}
	if inv.Transfers != inv.MaxID {
		p = append(p, fmt.Sprintf("transfers count %d ≠ max id %d", inv.Transfers, inv.MaxID))
	}
	if inv.SeqLastID != inv.MaxID {
		p = append(p, fmt.Sprintf("transfer_seq.last_id %d ≠ max transfer id %d", inv.SeqLastID, inv.MaxID))
	}
	if len(inv.Mismatched) > 0 {
		p = append(p, "balances not matching the transfers log: "+strings.Join(inv.Mismatched, "; "))
	}
	for _, c := range inv.CheckTable {
		p = append(p, "CHECK TABLE "+c)
	}
	return p
}

// Check reads the invariants from a (restored) bank database.
func Check(ctx context.Context, db *sql.DB) (Invariants, error) {
	var inv Invariants
	if err := checkTables(ctx, db, &inv); err != nil {
		return inv, err
	}
	if err := db.QueryRowContext(ctx, `SELECT v FROM bank.bank_meta WHERE k='total'`).Scan(&inv.ExpectedTotal); err != nil {
		return inv, fmt.Errorf("read expected total: %w", err)
	}
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(balance),0) FROM bank.accounts`).Scan(&inv.Accounts, &inv.Total); err != nil {
		return inv, fmt.Errorf("sum balances: %w", err)
	}
	if err := db.QueryRowContext(ctx, `SELECT last_id FROM bank.transfer_seq WHERE id=1`).Scan(&inv.SeqLastID); err != nil {
		return inv, fmt.Errorf("read transfer_seq: %w", err)
	}
	rows, err := db.QueryContext(ctx, `SELECT id FROM bank.transfers`)
	if err != nil {
		return inv, fmt.Errorf("read transfer ids: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return inv, fmt.Errorf("read transfer ids: %w", err)
		}
		ids = append(ids, id)
		if id > inv.MaxID {
			inv.MaxID = id
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return inv, fmt.Errorf("read transfer ids: %w", err)
	}
	rows.Close()
	inv.Transfers = int64(len(ids))
	inv.Gaps, inv.BadIDs = FindGaps(ids)

	// Every transfer's debit and credit must be in the balances: a transfer
	// logged without its balance updates (or the reverse) shows up here even
	// when the total still adds up.
	mrows, err := db.QueryContext(ctx, `
SELECT a.id, a.balance, a.opening_balance - COALESCE(o.s, 0) + COALESCE(i.s, 0) AS expected
FROM bank.accounts a
LEFT JOIN (SELECT from_account AS id, SUM(amount) AS s FROM bank.transfers GROUP BY from_account) o ON o.id = a.id
LEFT JOIN (SELECT to_account AS id, SUM(amount) AS s FROM bank.transfers GROUP BY to_account) i ON i.id = a.id
HAVING a.balance <> expected
ORDER BY a.id LIMIT 5`)
	if err != nil {
		return inv, fmt.Errorf("reconcile balances: %w", err)
	}
	defer mrows.Close()
	for mrows.Next() {
		var id, bal, exp int64
		if err := mrows.Scan(&id, &bal, &exp); err != nil {
			return inv, fmt.Errorf("reconcile balances: %w", err)
		}
		inv.Mismatched = append(inv.Mismatched, fmt.Sprintf("account %d balance %d, log says %d", id, bal, exp))
	}
	return inv, mrows.Err()
}

func checkTables(ctx context.Context, db *sql.DB, inv *Invariants) error {
	seen := map[string]bool{}
	for _, t := range Tables {
		rows, err := db.QueryContext(ctx, "CHECK TABLE bank."+t+" EXTENDED")
		if err != nil {
			return fmt.Errorf("CHECK TABLE %s: %w", t, err)
		}
		for rows.Next() {
			var table, op, msgType, msgText string
			if err := rows.Scan(&table, &op, &msgType, &msgText); err != nil {
				rows.Close()
				return fmt.Errorf("CHECK TABLE %s: %w", t, err)
			}
			// Only the final "status OK" row means the table is sound; any
			// error/warning row is a finding.
			if strings.EqualFold(msgType, "status") && strings.EqualFold(msgText, "OK") {
				seen[t] = true
				continue
			}
			inv.CheckTable = append(inv.CheckTable, fmt.Sprintf("%s: %s %s", table, msgType, msgText))
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("CHECK TABLE %s: %w", t, err)
		}
		if !seen[t] {
			inv.CheckTable = append(inv.CheckTable, fmt.Sprintf("bank.%s: no status OK row", t))
		}
	}
	return nil
}
