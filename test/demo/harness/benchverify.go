package harness

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/quiesce/quiesce/internal/stats"
	rpt "github.com/quiesce/quiesce/test/demo/report"
)

// VerifyBench is the verify part of `demo bench`: one snapshot of the busy
// bank, verified again and again through the Lambda's verify action.
type VerifyBench struct {
	SnapshotID string
	Runs       []Verification
	// GoBench are the BenchmarkVerifyOverhead lines of `go test -bench`
	// (hostagent verify run directly on a test volume), when given.
	GoBench []string `json:",omitempty"`
}

// firstFailure is the first verification that did not pass (nil: none, or no verify bench).
func (vb *VerifyBench) firstFailure() *Verification {
	if vb == nil {
		return nil
	}
	for i := range vb.Runs {
		if !vb.Runs[i].Passed() {
			return &vb.Runs[i]
		}
	}
	return nil
}

// verifySample is one run's numbers in milliseconds.
type verifySample struct {
	createToTag, start, checkTables, shutdown, inProcess float64
}

func (v Verification) sample() (verifySample, bool) {
	r := v.Report
	if !v.Passed() || r == nil || v.CreateToTag < 0 {
		return verifySample{}, false
	}
	s := verifySample{createToTag: float64(v.CreateToTag.Microseconds()) / 1000,
		start: r.TimingsMS["start"], checkTables: r.TimingsMS["check_tables"], shutdown: r.TimingsMS["shutdown"]}
	// What BenchmarkVerifyOverhead calls in_process_ms: hostagent's own
	// work beyond the server's start, CHECK TABLE and shutdown.
	s.inProcess = r.DurationMS - s.start - s.checkTables - s.shutdown
	return s, true
}

// benchVerify takes one snapshot through the Lambda while the writer runs,
// then verifies it runs times (the verify action re-verifies a run's set
// when asked for that run). AWS latencies are not injected here: the
// numbers are this machine's.
func (e *Env) benchVerify(ctx context.Context, runs int, runID string) (*VerifyBench, error) {
	e.AWS.CommandDelay, e.AWS.ResultDelay = 0, 0
	e.AWS.SetLatency("CreateSnapshots", 0)
	e.AWS.SetLatency("CreateSnapshot", 0)
	e.StartWriter(e.Cfg.Writers)
	if err := sleepCtx(ctx, time.Second); err != nil {
		return nil, err
	}
	c := e.RunCycle(ctx, 1, runID)
	if err := e.StopWriter(ctx); err != nil {
		return nil, err
	}
	if !c.OK() || len(c.Snapshots) != 1 {
		return nil, fmt.Errorf("the snapshot to verify: %s", strings.Join(c.Problems, "; "))
	}
	vb := &VerifyBench{SnapshotID: c.Snapshots[0].ID}
	e.logf("bench    verify %s %d times through the Lambda's verify action", vb.SnapshotID, runs)
	for i := 0; i < runs; i++ {
		v := e.Verify(ctx, vb.SnapshotID, runID)
		judgeSound(&v, time.Time{}, nil)
		vb.Runs = append(vb.Runs, v)
		if ctx.Err() != nil {
			return vb, ctx.Err()
		}
	}
	return vb, nil
}

// ReadGoBench returns the BenchmarkVerifyOverhead results of a `go test
// -bench` output file, one line each. A log line the benchmark printed can
// split a result (the name, the log line, then the numbers on a line of
// their own): the name is joined with the next line holding "ns/op".
func ReadGoBench(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("-go-bench: %w", err)
	}
	defer f.Close()
	return parseGoBench(bufio.NewScanner(f))
}

func parseGoBench(sc *bufio.Scanner) ([]string, error) {
	var out []string
	name := ""
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) > 0 && strings.HasPrefix(fields[0], "BenchmarkVerifyOverhead"):
			if strings.Contains(sc.Text(), "ns/op") {
				out, name = append(out, strings.Join(fields, " ")), ""
			} else {
				name = fields[0]
			}
		case name != "" && strings.Contains(sc.Text(), "ns/op"):
			out, name = append(out, name+" "+strings.Join(fields, " ")), ""
		}
	}
	return out, sc.Err()
}

// verifyMarkdown is the report's verify section.
func verifyMarkdown(vb *VerifyBench) string {
	if vb == nil {
		return ""
	}
	var w strings.Builder
	var c2t, start, check, shutdown, inProc []float64
	failed := 0
	for _, v := range vb.Runs {
		s, ok := v.sample()
		if !ok {
			failed++
			continue
		}
		c2t, start, check = append(c2t, s.createToTag), append(start, s.start), append(check, s.checkTables)
		shutdown, inProc = append(shutdown, s.shutdown), append(inProc, s.inProcess)
	}
	fmt.Fprintf(&w, "\n## Verify: the demo's snapshot through the Lambda's verify action\n\n")
	fmt.Fprintf(&w, "%s of the busy bank, verified %d times (%d failed): CreateVolume (FICLONE) → AttachVolume (loop device) → QuiesceVerify document → `hostagent verify` (throwaway mariadbd with crash recovery, CHECK TABLE on every table, binlog and GTID against the tags, demo/bank-checks.sql) → detach → `quiesce:verified` tag, the Lambda polling every 200 ms (QUIESCE_VERIFY_POLL). No AWS latency injected: this machine's numbers. Milliseconds, nearest-rank percentiles.\n\n",
		vb.SnapshotID, len(vb.Runs), failed)
	row := func(name string, v []float64, target string) []string {
		if len(v) == 0 {
			return []string{name, "-", "-", "-", "0", target}
		}
		return []string{name, f1(stats.Percentile(v, 50)), f1(stats.Percentile(v, 99)), f1(stats.Percentile(v, 100)), fmt.Sprint(len(v)), target}
	}
	met := func(v []float64, limit float64) string {
		if len(v) > 0 && stats.Percentile(v, 50) <= limit {
			return "met"
		}
		return "MISSED"
	}
	w.WriteString(rpt.Markdown([]string{"", "p50", "p99", "max", "n", "target (p50)"}, [][]string{
		row("create volume → quiesce:verified tag", c2t, "≤ 5000: "+met(c2t, 5000)),
		row("server start (crash recovery included)", start, ""),
		row("CHECK TABLE", check, ""),
		row("server shutdown", shutdown, ""),
		row("hostagent verify's own work (duration − start − CHECK TABLE − shutdown)", inProc, "≤ 200: "+met(inProc, 200)),
	}))
	if len(vb.GoBench) > 0 {
		w.WriteString("\n`BenchmarkVerifyOverhead` (hostagent/verify_bench_test.go: the real binary on a restored loop XFS volume; overhead_ms = process wall time − server start − CHECK TABLE − shutdown, target ≤ 200 ms):\n\n```\n")
		w.WriteString(strings.Join(vb.GoBench, "\n") + "\n```\n")
	}
	return w.String()
}

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
