package harness

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/demo/bank"
)

var t0 = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func cycleAt(n, startMS, windowMS int, copyMS int) *Cycle {
	return &Cycle{
		N: n, RunID: "r", LambdaWindowMS: float64(windowMS + 5), FrozenMS: float64(windowMS - 20), SnapshotCallMS: float64(copyMS + 1),
		Freeze:    &contract.FreezeReport{StartedAt: at(startMS), HeldMS: 20},
		Thaw:      &contract.ThawReport{ThawedAt: at(startMS + windowMS), ThawedBy: contract.ThawedByCommand},
		Window:    time.Duration(windowMS) * time.Millisecond,
		CopyTime:  time.Duration(copyMS) * time.Millisecond,
		Snapshots: []CycleSnapshot{{ID: "snap-1", Reflink: true, Tags: map[string]string{TagConsistency: "application"}}},
	}
}

func TestSummarizeTargetsAndStallPlacement(t *testing.T) {
	res := &RunResult{Cycles: []*Cycle{cycleAt(1, 1000, 100, 4), cycleAt(2, 3000, 120, 6), cycleAt(3, 5000, 300, 200)}}
	commits := []bank.Commit{
		{ID: 1, Start: at(1010), End: at(1130)}, // blocked by cycle 1: 120 ms, window 100 → +20
		{ID: 2, Start: at(3000), End: at(3190)}, // cycle 2: 190 ms vs 120 → +70 (misses the target)
		{ID: 3, Start: at(4000), End: at(4250)}, // 250 ms outside any window
	}
	for _, c := range res.Cycles {
		c.Stall = bank.StallDuring(commits, c.Freeze.StartedAt, c.Thaw.ThawedAt)
	}
	res.Verifications = []Verification{{CreateToTag: 3 * time.Second}, {CreateToTag: -1, Problems: []string{"verification failed"}}, {CreateToTag: 4 * time.Second}}
	res.Damaged = &Verification{Damaged: true, CreateToTag: -1}
	res.Writer = writerStats(&bank.Writer{}, commits, 10*time.Second, res.Cycles)
	res.Summary = summarize(res)
	s := res.Summary
	if s.CyclesOK != 3 || s.Snapshots != 3 || s.VerifiedOK != 2 || s.VerifyFailed != 1 || !s.DamagedCaught || !res.Failed() {
		t.Fatalf("summary counts %+v", s)
	}
	if s.Window.P50 != 120*time.Millisecond || s.WindowExclCopy.Max != 114*time.Millisecond || s.Copy.Max != 200*time.Millisecond {
		t.Fatalf("windows %+v / %+v / %+v", s.Window, s.WindowExclCopy, s.Copy)
	}
	if s.StallMinusWindowMax != 70*time.Millisecond {
		t.Fatalf("stall − window = %s, want 70ms", s.StallMinusWindowMax)
	}
	met := map[string]bool{}
	for _, tg := range s.Targets {
		met[tg.Name[:12]] = tg.Met
	}
	if s.CreateToVerified.N != 2 || s.CreateToVerified.P50 != 3*time.Second {
		t.Fatalf("create → verified %+v, want 2 samples, p50 3 s", s.CreateToVerified)
	}
	if !met["write-blocke"] || met["writer max s"] || met["verification"] || !met["damaged copy"] || !met["create volum"] {
		t.Fatalf("targets %+v", s.Targets)
	}
	if res.Writer.MaxStall != 250*time.Millisecond || res.Writer.MaxStallCycle != 0 || res.Writer.MaxStallNote != "ended 750.0 ms before cycle 3's freeze" {
		t.Fatalf("writer stats %+v", res.Writer)
	}
	text := SummaryText(res)
	assertContains(t, "summary", text, "3 ok, 0 failed", "2 ok, 1 failed; damaged copy caught", "250.0 ms, outside any freeze window (ended 750.0 ms before cycle 3's freeze)", "MISSED", "snapshot copy (FICLONE reflink)")
}

// A damaged copy that verification did not reject fails the run.
func TestUncaughtDamageFailsTheRun(t *testing.T) {
	res := &RunResult{Cycles: []*Cycle{cycleAt(1, 1000, 100, 4)}, Verifications: []Verification{{CreateToTag: time.Second}}}
	res.Damaged = &Verification{Damaged: true}
	judgeDamaged(res.Damaged, DamagedTable) // status and tags empty: not caught
	res.Summary = summarize(res)
	if res.Summary.DamagedCaught || !res.Failed() {
		t.Fatalf("uncaught damage: caught=%v failed=%v", res.Summary.DamagedCaught, res.Failed())
	}
	ok := &Verification{Damaged: true, Status: "failed", Verified: "failed", VerifyNote: "CHECK TABLE `bank`.`transfers`: corrupt"}
	judgeDamaged(ok, DamagedTable)
	if ok.Passed() {
		t.Fatal("a failure naming another table counts as catching the damage to accounts")
	}
}

func TestJudgeSoundFindsALostCommit(t *testing.T) {
	commits := []bank.Commit{{ID: 1, End: at(10)}, {ID: 2, End: at(20)}, {ID: 3, End: at(40)}}
	v := Verification{Status: "ok", Verified: "ok", Transfers: 2}
	judgeSound(&v, at(30), commits)
	if !v.Passed() {
		t.Fatalf("sound copy judged %q", v.Problems)
	}
	v = Verification{Status: "ok", Verified: "ok", Transfers: 1}
	judgeSound(&v, at(30), commits)
	if v.Passed() || !strings.Contains(v.Problems[0], "transfer 2 committed") {
		t.Fatalf("lost commit not found: %q", v.Problems)
	}
	v = Verification{Status: "ok", Verified: "ok"}
	judgeSound(&v, at(30), commits)
	if v.Passed() || !strings.Contains(v.Problems[0], "no-lost-commit check cannot run") {
		t.Fatalf("a snapshot without a usable GTID tag judged %q", v.Problems)
	}
	v = Verification{Status: "failed", Verified: "failed", VerifyNote: "CHECK TABLE x"}
	judgeSound(&v, at(30), commits)
	if v.Passed() || !strings.Contains(v.Problems[0], "CHECK TABLE x") {
		t.Fatalf("failed verification judged %q", v.Problems)
	}
}

func TestGTIDSeq(t *testing.T) {
	for in, want := range map[string]int64{"0-1-42": 42, " 0-1-7\n": 7, "0-1-5,1-2-3": -1, "": -1, "0-1": -1, "0-1-x": -1} {
		got, ok := gtidSeq(in)
		if (want < 0) == ok || (ok && int64(got) != want) {
			t.Errorf("gtidSeq(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
}

func TestCycleLineShowsFailures(t *testing.T) {
	c := cycleAt(1, 0, 100, 3)
	c.problem("no snapshot tagged quiesce:run-id=r")
	line := cycleLine(c, 5)
	if !strings.Contains(line, "cycle  1/5") || !strings.Contains(line, "FAILED: no snapshot tagged") {
		t.Fatalf("cycle line %q", line)
	}
}

func TestBenchMarkdown(t *testing.T) {
	mk := func(key string, windows ...int) *Method {
		m := &Method{Key: key, Name: "method " + key}
		for i, w := range windows {
			m.Samples = append(m.Samples, Sample{Start: at(i * 1000), End: at(i*1000 + w), Window: time.Duration(w) * time.Millisecond,
				Stall: time.Duration(w+5) * time.Millisecond, Injected: map[bool]time.Duration{true: 700 * time.Millisecond}[key == "c"]})
		}
		return m
	}
	seed := mk("b", 100, 200)
	seed.Samples = append(seed.Samples, Sample{Err: "seed-baseline.sh: exit status 1"})
	b := &BenchResult{Cycles: 2, Writers: 1, LockMode: "backup-stage", StartedAt: t0,
		Methods: []*Method{mk("a", 20, 40), seed, mk("c", 750, 770)}}
	md := BenchMarkdown(b)
	assertContains(t, "report", md,
		"| (a) method a | 20.0 | 40.0 | 40.0 |",
		"| window p50 | 100.0 | 20.0 | 5.0× |",
		"| orchestration overhead | 50.0 | 70.0 | 70.0 | 2 |",
		"- (b) 1 failed; first: seed-baseline.sh: exit status 1",
		"backup-stage (MariaDB `BACKUP STAGE START`",
	)
	if !b.Failed() {
		t.Error("a failed sample does not fail the bench")
	}
}

func TestVerifyMarkdown(t *testing.T) {
	vb := &VerifyBench{SnapshotID: "snap-1", GoBench: []string{"BenchmarkVerifyOverhead-2 5 1 ns/op 95.0 overhead_ms"}}
	for i := 1; i <= 3; i++ {
		vb.Runs = append(vb.Runs, Verification{CreateToTag: time.Duration(i) * time.Second, Report: &contract.VerifyReport{
			DurationMS: 1000 + float64(i)*10, TimingsMS: map[string]float64{"start": 600, "check_tables": 200, "shutdown": 100}}})
	}
	vb.Runs = append(vb.Runs, Verification{CreateToTag: -1, Problems: []string{"verification failed"}})
	md := verifyMarkdown(vb)
	assertContains(t, "verify section", md,
		"verified 4 times (1 failed)",
		"| create volume → quiesce:verified tag | 2000.0 | 3000.0 | 3000.0 | 3 | ≤ 5000: met |",
		"| hostagent verify's own work (duration − start − CHECK TABLE − shutdown) | 120.0 | 130.0 | 130.0 | 3 | ≤ 200: met |",
		"BenchmarkVerifyOverhead-2 5 1 ns/op 95.0 overhead_ms",
	)
	b := &BenchResult{Verify: vb}
	if !b.Failed() {
		t.Error("a failed verification does not fail the bench")
	}
	vb.Runs[0].CreateToTag = 6 * time.Second
	vb.Runs[1].CreateToTag = 7 * time.Second
	if md := verifyMarkdown(vb); !strings.Contains(md, "≤ 5000: MISSED") {
		t.Errorf("a p50 over 5 s is not marked missed:\n%s", md)
	}
}

func TestParseGoBenchJoinsASplitResult(t *testing.T) {
	in := "goos: linux\n" +
		"BenchmarkVerifyOverhead-2   \t[mysql] 2026/12/01 21:29:16 packets.go:155 write unix: broken pipe\n" +
		"       5\t 182134504 ns/op\t         2.736 check_tables_ms\t        17.19 overhead_ms\n" +
		"BenchmarkOther-2 1 5 ns/op\n" +
		"BenchmarkVerifyOverhead-4 \t 5\t 1 ns/op\t 9.0 overhead_ms\n"
	got, err := parseGoBench(bufio.NewScanner(strings.NewReader(in)))
	want := []string{"BenchmarkVerifyOverhead-2 5 182134504 ns/op 2.736 check_tables_ms 17.19 overhead_ms", "BenchmarkVerifyOverhead-4 5 1 ns/op 9.0 overhead_ms"}
	if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("parseGoBench = %q, %v; want %q", got, err, want)
	}
}

func TestStateDirForIsPerWorkDir(t *testing.T) {
	a, b := StateDirFor("/var/tmp/quiesce-demo-test-1"), StateDirFor("/var/tmp/quiesce-demo-test-2")
	if StateDirFor("/var/tmp/quiesce-demo") != DefaultStateDir || a == b || !strings.HasPrefix(a, DefaultStateDir+"-") || a != StateDirFor("/var/tmp/quiesce-demo-test-1") {
		t.Fatalf("state dirs %q %q %q", StateDirFor("/var/tmp/quiesce-demo"), a, b)
	}
}

func TestRecoveryText(t *testing.T) {
	msgs := []string{"InnoDB: Starting crash recovery from checkpoint LSN=44878", "InnoDB: To recover: 20 pages", "InnoDB: 1 transactions in prepared state after recovery"}
	for _, tt := range []struct {
		r    contract.Recovery
		want string
	}{
		{contract.Recovery{}, "no crash recovery needed"},
		{contract.Recovery{Ran: true, Messages: msgs}, "crash recovery: 20 redo pages, 1 prepared transaction(s) resolved against the binlog"},
		{contract.Recovery{Ran: true, Messages: msgs[:1]}, "crash recovery: 1 log lines"},
	} {
		if got := recoveryText(tt.r); got != tt.want {
			t.Errorf("recoveryText(%v) = %q, want %q", tt.r.Messages, got, tt.want)
		}
	}
}

// assertContains fails the test for every one of wants that text (what the
// message calls what) lacks.
func assertContains(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, text)
		}
	}
}
