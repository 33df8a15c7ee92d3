package bank

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	demodata "github.com/quiesce/quiesce/demo"
	"github.com/quiesce/quiesce/test/fixture"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

// queryer is a *sql.DB or a *sql.Conn (inside a transaction).
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// runChecks evaluates demo/bank-checks.sql as hostagent verify does: each
// statement must return one row whose first column is true. It returns the
// statements that did not, by their first column's name.
func runChecks(t *testing.T, db queryer) []string {
	t.Helper()
	var failed []string
	for _, stmt := range SplitStatements(demodata.BankChecksSQL) {
		rows, err := db.QueryContext(context.Background(), stmt)
		if err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
		cols, _ := rows.Columns()
		var vals []sql.NullString
		n := 0
		for rows.Next() {
			if vals, err = mariadb.ScanStrings(rows, len(cols)); err != nil {
				t.Fatal(err)
			}
			n++
		}
		rows.Close()
		if n != 1 || vals[0].String != "1" {
			failed = append(failed, cols[0])
		}
	}
	return failed
}

// Every statement of demo/bank-checks.sql holds on a busy, sound bank, and
// each one catches the damage it is about (a check that cannot fail proves
// nothing).
func TestBankChecksHoldAndCatchDamage(t *testing.T) {
	fixture.RequireRoot(t)
	fixture.SkipUnlessMariaDB(t)
	m := fixture.StartMariaDBForTest(t, mariadb.Options{StartTimeout: time.Minute})
	db, err := m.DB()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := Load(ctx, db, demodata.BankSQL); err != nil {
		t.Fatal(err)
	}
	w := &Writer{DB: db, Workers: 2}
	wctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	w.Run(wctx)
	cancel()
	if w.Count() == 0 {
		t.Fatal("the writer committed nothing")
	}
	if failed := runChecks(t, db); len(failed) != 0 {
		t.Fatalf("sound bank after %d transfers fails %v", w.Count(), failed)
	}
	// Each damage runs in a transaction rolled back afterwards, so the next
	// starts from the sound bank, and each breaks exactly one invariant. The
	// binlog check compares @@gtid_binlog_pos, which an open transaction
	// does not move, with the transfers: deleting the newest transfer with
	// its balance effects and its sequence number fools every other check.
	tests := []struct {
		check string
		stmts []string
	}{
		{"accounts_complete", []string{"INSERT INTO bank.accounts VALUES (1001, 0, 0)"}},
		{"total_unchanged", []string{"UPDATE bank.accounts SET balance = balance + 1, opening_balance = opening_balance + 1 WHERE id = 1"}},
		{"log_gap_free", []string{"UPDATE bank.transfers SET id = id + 1000000 WHERE id = 1"}},
		{"sequence_agrees", []string{"UPDATE bank.transfer_seq SET last_id = last_id + 1"}},
		{"balances_match_log", []string{"UPDATE bank.accounts SET balance = balance + 5 WHERE id = 1", "UPDATE bank.accounts SET balance = balance - 5 WHERE id = 2"}},
		{"binlog_matches_innodb", []string{
			"UPDATE bank.accounts a JOIN bank.transfers t ON t.id = (SELECT MAX(id) FROM bank.transfers) SET a.balance = a.balance + IF(a.id = t.from_account, t.amount, 0) - IF(a.id = t.to_account, t.amount, 0) WHERE a.id IN (t.from_account, t.to_account)",
			"DELETE FROM bank.transfers ORDER BY id DESC LIMIT 1",
			"UPDATE bank.transfer_seq SET last_id = last_id - 1",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.check, func(t *testing.T) {
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
			defer conn.ExecContext(ctx, "ROLLBACK") //nolint:errcheck // undo the damage
			for _, s := range tt.stmts {
				if _, err := conn.ExecContext(ctx, s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			failed := runChecks(t, conn)
			if strings.Join(failed, ",") != tt.check {
				t.Fatalf("damage for %s made %v fail, want exactly [%s]", tt.check, failed, tt.check)
			}
		})
	}
	if failed := runChecks(t, db); len(failed) != 0 {
		t.Fatalf("the rollbacks left damage: %v", failed)
	}
}
