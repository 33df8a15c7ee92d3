package bank

import (
	"reflect"
	"strings"
	"testing"
	"time"

	demodata "github.com/quiesce/quiesce/demo"
)

func TestSplitStatementsOnBankSchema(t *testing.T) {
	stmts := SplitStatements(demodata.BankSQL)
	if len(stmts) < 8 {
		t.Fatalf("got %d statements from bank.sql, want ≥ 8: %q", len(stmts), stmts)
	}
	for _, s := range stmts {
		if strings.HasSuffix(s, ";") || strings.HasPrefix(strings.TrimSpace(s), "--") {
			t.Errorf("statement not cleaned: %q", s)
		}
	}
	// Every table the checks read must be created by the schema.
	joined := strings.Join(stmts, "\n")
	for _, table := range Tables {
		if !strings.Contains(joined, "CREATE TABLE "+table+" (") {
			t.Errorf("bank.sql does not create %s", table)
		}
	}
	if got := SplitStatements("SELECT 1;\n-- c\nSELECT\n 2;\nSELECT 3"); !reflect.DeepEqual(got, []string{"SELECT 1", "SELECT\n 2", "SELECT 3"}) {
		t.Fatalf("SplitStatements = %q", got)
	}
}

func TestMaxStallStallDuringAndFirstCommitAfter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	commits := []Commit{
		{ID: 1, Start: at(0), End: at(5)},
		{ID: 2, Start: at(10), End: at(200)}, // blocked by a freeze
		{ID: 3, Start: at(20), End: at(201)},
		{ID: 4, Start: at(300), End: at(302)},
	}
	s := MaxStall(commits, time.Time{}, time.Time{})
	if s.Max != 190*time.Millisecond || s.ID != 2 || !s.At.Equal(at(200)) || s.Count != 4 {
		t.Fatalf("MaxStall(all) = %+v", s)
	}
	s = MaxStall(commits, at(250), at(400))
	if s.Max != 2*time.Millisecond || s.ID != 4 || s.Count != 1 {
		t.Fatalf("MaxStall(window) = %+v", s)
	}
	// A window the slow commits overlap, though commit 4 alone ended in it.
	s = StallDuring(commits, at(150), at(350))
	if s.Max != 190*time.Millisecond || s.ID != 2 || s.Count != 3 {
		t.Fatalf("StallDuring(window) = %+v", s)
	}
	if s = StallDuring(commits, at(6), at(9)); s.Count != 0 {
		t.Fatalf("StallDuring(a window no commit overlaps) = %+v", s)
	}
	c, ok := FirstCommitAfter(commits, at(199))
	if !ok || c.ID != 2 {
		t.Fatalf("FirstCommitAfter = %+v %v", c, ok)
	}
	if _, ok := FirstCommitAfter(commits, at(500)); ok {
		t.Fatal("FirstCommitAfter past the end found a commit")
	}
}
