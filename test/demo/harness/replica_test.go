package harness

import (
	"strings"
	"testing"
)

func TestParseGoBenchLine(t *testing.T) {
	tests := []struct {
		line  string
		ok    bool
		mode  string
		units []string
	}{
		{"BenchmarkReplicaModes/replica-2   1   123 ns/op   4.5 held_p50_ms   9.0 source_stall_max_ms", true, "replica", []string{"held_p50_ms", "source_stall_max_ms"}},
		{"BenchmarkReplicaModes/backup-stage   1   55 ns/op   7.0 held_p50_ms", true, "backup-stage", []string{"held_p50_ms"}},
		{"BenchmarkReplicaModes/ftwrl-16 1 55 ns/op", false, "", nil}, // no custom metric
		{"BenchmarkOther/replica-2 1 5 ns/op 1 x_ms", false, "", nil},
		{"PASS", false, "", nil},
		{"", false, "", nil},
	}
	for _, tt := range tests {
		row, ok := parseGoBenchLine(tt.line)
		if ok != tt.ok || row.Mode != tt.mode || strings.Join(row.Units, ",") != strings.Join(tt.units, ",") {
			t.Errorf("%q: got %v %q %v, want %v %q %v", tt.line, ok, row.Mode, row.Units, tt.ok, tt.mode, tt.units)
		}
	}
}

func TestComparison(t *testing.T) {
	state := func(name, gtid, sum string) ServerState {
		return ServerState{Name: name, GTID: gtid, Checksums: map[string]string{"bank.accounts": sum}}
	}
	tests := []struct {
		name        string
		states      []ServerState
		sums, gtids bool
	}{
		{"equal", []ServerState{state("p", "0-1-9", "7"), state("r", "0-1-9", "7"), state("c", "0-1-9", "7")}, true, true},
		{"clone behind", []ServerState{state("p", "0-1-9", "7"), state("r", "0-1-9", "7"), state("c", "0-1-8", "7")}, true, false},
		{"checksum differs", []ServerState{state("p", "0-1-9", "7"), state("c", "0-1-9", "8")}, false, true},
		{"table missing", []ServerState{state("p", "0-1-9", "7"), {Name: "c", GTID: "0-1-9", Checksums: map[string]string{}}}, false, true},
		{"NULL checksum everywhere", []ServerState{state("p", "0-1-9", ""), state("c", "0-1-9", "")}, false, true},
		{"only the primary", []ServerState{state("p", "0-1-9", "7")}, false, false},
	}
	for _, tt := range tests {
		c := Comparison{States: tt.states}
		if c.ChecksumsEqual() != tt.sums || c.GTIDEqual() != tt.gtids || c.Equal() != (tt.sums && tt.gtids) {
			t.Errorf("%s: checksums %v gtid %v, want %v %v", tt.name, c.ChecksumsEqual(), c.GTIDEqual(), tt.sums, tt.gtids)
		}
	}
}

func TestReplicaSummaryFailures(t *testing.T) {
	res := &ReplicaResult{
		Snapshots: []*ReplicaSnapshot{{Of: "replica", Mode: "replica"}},
		Clones:    []*Clone{{From: "replica", Exit: 6}},
		Problems:  []string{"hostagent clone of the replica snapshot: exit 6"},
	}
	if !res.Failed() {
		t.Fatal("a result with problems passed")
	}
	text := ReplicaSummaryText(res)
	assertContains(t, "summary", text, "FAILED (exit 6)", "FAILED: hostagent clone", "\nFAILED in")
	ok := &ReplicaResult{Checks: []Comparison{{States: []ServerState{{GTID: "0-1-1", Checksums: map[string]string{"t": "1"}}, {GTID: "0-1-2", Checksums: map[string]string{"t": "1"}}}}}}
	if !ok.Failed() {
		t.Error("a result whose GTID positions differ passed")
	}
}
