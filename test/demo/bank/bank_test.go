package bank

import (
	"reflect"
	"strings"
	"testing"
	"time"

	demodata "github.com/quiesce/quiesce/demo"
)

func TestFindGaps(t *testing.T) {
	tests := []struct {
		name string
		ids  []int64
		gaps []Gap
		bad  []int64
	}{
		{"empty log", nil, nil, nil},
		{"contiguous unsorted", []int64{3, 1, 2}, nil, nil},
		{"missing first", []int64{2, 3}, []Gap{{1, 1}}, nil},
		{"hole in the middle", []int64{1, 2, 5, 6}, []Gap{{3, 4}}, nil},
		{"two holes", []int64{1, 3, 7}, []Gap{{2, 2}, {4, 6}}, nil},
		{"duplicate", []int64{1, 2, 2, 3}, nil, []int64{2}},
		{"zero and negative", []int64{-1, 0, 1}, nil, []int64{-1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gaps, bad := FindGaps(tt.ids)
			if !reflect.DeepEqual(gaps, tt.gaps) || !reflect.DeepEqual(bad, tt.bad) {
				t.Fatalf("FindGaps(%v) = %v, %v; want %v, %v", tt.ids, gaps, bad, tt.gaps, tt.bad)
			}
		})
	}
}

func TestProblems(t *testing.T) {
	sound := Invariants{Accounts: 3, ExpectedTotal: 300, Total: 300, Transfers: 4, MaxID: 4, SeqLastID: 4}
	if p := sound.Problems(); len(p) != 0 {
		t.Fatalf("sound bank reported problems: %v", p)
	}
	tests := []struct {
		name   string
		mutate func(*Invariants)
		want   string
	}{
		{"money lost", func(i *Invariants) { i.Total = 290 }, "money total 290, want 300 (difference -10)"},
		{"gap", func(i *Invariants) { i.Gaps = []Gap{{2, 3}}; i.Transfers = 2 }, "missing ids 2..3"},
		{"count vs max", func(i *Invariants) { i.Transfers = 3 }, "transfers count 3 ≠ max id 4"},
		{"sequence ahead of log", func(i *Invariants) { i.SeqLastID = 5 }, "transfer_seq.last_id 5 ≠ max transfer id 4"},
		{"balance mismatch", func(i *Invariants) { i.Mismatched = []string{"account 2 balance 90, log says 100"} }, "account 2 balance 90"},
		{"check table", func(i *Invariants) { i.CheckTable = []string{"bank.transfers: error Corrupt"} }, "CHECK TABLE bank.transfers: error Corrupt"},
		{"duplicates", func(i *Invariants) { i.BadIDs = []int64{2} }, "duplicate or invalid ids: [2]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := sound
			tt.mutate(&inv)
			p := strings.Join(inv.Problems(), "\n")
			if !strings.Contains(p, tt.want) {
				t.Fatalf("Problems() = %q, want it to mention %q", p, tt.want)
			}
		})
	}
}

func TestProblemsTruncatesLongGapList(t *testing.T) {
	inv := Invariants{Transfers: 1, MaxID: 1, SeqLastID: 1}
	for i := int64(0); i < 8; i++ {
		inv.Gaps = append(inv.Gaps, Gap{i * 10, i * 10})
	}
	p := strings.Join(inv.Problems(), "\n")
	if !strings.Contains(p, "… 3 more") {
		t.Fatalf("long gap list not truncated: %q", p)
	}
}

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

func TestMaxStallAndFirstCommitAfter(t *testing.T) {
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
	c, ok := FirstCommitAfter(commits, at(199))
	if !ok || c.ID != 2 {
		t.Fatalf("FirstCommitAfter = %+v %v", c, ok)
	}
	if _, ok := FirstCommitAfter(commits, at(500)); ok {
		t.Fatal("FirstCommitAfter past the end found a commit")
	}
}
