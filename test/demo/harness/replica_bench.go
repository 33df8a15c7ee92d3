package harness

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
	rpt "github.com/quiesce/quiesce/test/demo/report"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

// ModeBench is one lock mode's snapshot cycles of the replica under the
// primary's bank writers.
type ModeBench struct {
	Mode string
	// Held is hostagent freeze's start → everything held (held_ms).
	Held []time.Duration
	// Hold is the lock's hold (ThawReport.held_ms): how long the replica's
	// applier was stopped or blocked.
	Hold []time.Duration
	// Stall is the primary writers' slowest commit during the cycle.
	Stall []time.Duration
	// Behind is how many of the primary's transactions the replica had not
	// applied when the thaw returned: the lag the cycle added.
	Behind []int64
	// CatchUp is thaw returned → the replica has applied what the primary
	// had then: the time until the lag is back to normal. Idle is the same
	// wait before the cycle, the baseline.
	CatchUp, Idle []time.Duration
	Errors        []string
}

// benchModes runs BenchCycles snapshot cycles of the replica per lock mode,
// interleaved, with the writer running on the primary.
func (e *ReplicaEnv) benchModes(ctx context.Context) ([]ModeBench, error) {
	modes := []string{contract.LockReplica, contract.LockFTWRL, contract.LockBackupStage}
	out := make([]ModeBench, len(modes))
	e.StartWriter()
	defer e.StopWriter(context.WithoutCancel(ctx)) //nolint:errcheck // Close reports a writer that will not stop
	if err := sleepCtx(ctx, time.Second); err != nil {
		return out, err
	}
	for i := 0; i < e.Opt.BenchCycles; i++ {
		for m, mode := range modes {
			out[m].Mode = mode
			if err := e.benchCycle(ctx, &out[m]); err != nil {
				out[m].Errors = append(out[m].Errors, err.Error())
			}
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
		}
		e.logf("bench    cycle %d/%d of %v done", i+1, e.Opt.BenchCycles, modes)
	}
	return out, nil
}

func (e *ReplicaEnv) benchCycle(ctx context.Context, b *ModeBench) error {
	t := time.Now()
	if err := e.waitCaughtUp(ctx, e.Replica); err != nil {
		return err
	}
	b.Idle = append(b.Idle, time.Since(t))
	s, err := e.snapshot(ctx, "replica", e.ReplicaVol, e.ReplicaDefaults, b.Mode)
	os.Remove(s.Image)
	if err != nil {
		return err
	}
	behind, berr := e.transactionsBehind(ctx)
	t = time.Now()
	if err := e.waitCaughtUp(ctx, e.Replica); err != nil {
		return err
	}
	b.CatchUp = append(b.CatchUp, time.Since(t))
	b.Held = append(b.Held, msDur(s.Freeze.HeldMS))
	b.Hold = append(b.Hold, msDur(s.Thaw.HeldMS))
	b.Stall = append(b.Stall, s.Stall.Max)
	if berr == nil {
		b.Behind = append(b.Behind, behind)
	}
	return berr
}

// transactionsBehind is the primary's GTID sequence minus the replica's.
func (e *ReplicaEnv) transactionsBehind(ctx context.Context) (int64, error) {
	p, err := e.Primary.GTIDBinlogPos(ctx)
	if err != nil {
		return 0, err
	}
	var r string
	if err := e.ReplicaSQL.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_slave_pos").Scan(&r); err != nil {
		return 0, err
	}
	pp, err := mariadb.ParseGTIDPos(p)
	if err != nil || len(pp) == 0 {
		return 0, fmt.Errorf("primary GTID %q: %v", p, err)
	}
	rp, err := mariadb.ParseGTIDPos(r)
	if err != nil || len(rp) == 0 {
		return 0, fmt.Errorf("replica GTID %q: %v", r, err)
	}
	return int64(pp[0].Seq) - int64(rp[0].Seq), nil
}

// GoBenchRow is one sub-benchmark of BenchmarkReplicaModes: its custom
// metrics by unit.
type GoBenchRow struct {
	Mode    string
	Metrics map[string]string
	Units   []string // in the order printed
}

// readGoBench reads BenchmarkReplicaModes' lines from `go test -bench`
// output ("BenchmarkReplicaModes/replica-2  1  123 ns/op  4.1 held_p50_ms …").
func readGoBench(path string) []GoBenchRow {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var rows []GoBenchRow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if row, ok := parseGoBenchLine(sc.Text()); ok {
			rows = append(rows, row)
		}
	}
	return rows
}

func parseGoBenchLine(line string) (GoBenchRow, bool) {
	fields := strings.Fields(line)
	name, ok := strings.CutPrefix(firstOr(fields, ""), "BenchmarkReplicaModes/")
	if !ok || len(fields) < 4 {
		return GoBenchRow{}, false
	}
	if i := strings.LastIndex(name, "-"); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	row := GoBenchRow{Mode: name, Metrics: map[string]string{}}
	for i := 2; i+1 < len(fields); i += 2 {
		unit := fields[i+1]
		if unit == "ns/op" {
			continue
		}
		row.Metrics[unit] = fields[i]
		row.Units = append(row.Units, unit)
	}
	if len(row.Units) == 0 {
		return GoBenchRow{}, false
	}
	return row, true
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

// benchRows renders the per-mode figures (p50 / max over the cycles).
func benchRows(bench []ModeBench) [][]string {
	pm := func(ds []time.Duration) string {
		if len(ds) == 0 {
			return "-"
		}
		d := rpt.Summarize(ds)
		return rpt.Ms(d.P50) + " / " + rpt.Ms(d.Max)
	}
	var rows [][]string
	for _, b := range bench {
		var maxBehind int64
		for _, n := range b.Behind {
			maxBehind = max(maxBehind, n)
		}
		rows = append(rows, []string{b.Mode, pm(b.Held), pm(b.Hold), pm(b.Stall), fmt.Sprint(maxBehind), pm(b.CatchUp), pm(b.Idle),
			fmt.Sprintf("%d/%d", len(b.Held), len(b.Held)+len(b.Errors))})
	}
	return rows
}

var benchHeaders = []string{"lock mode on the replica", "time to held", "applier stopped/blocked", "source writers' max stall",
	"replica behind at thaw (trx, max)", "thaw → lag normal", "idle catch-up (baseline)", "cycles ok"}

// goBenchTable renders BenchmarkReplicaModes' metrics, one row per mode.
func goBenchTable(rows []GoBenchRow, markdown bool) string {
	if len(rows) == 0 {
		return ""
	}
	headers := append([]string{"mode"}, rows[0].Units...)
	var body [][]string
	for _, r := range rows {
		line := []string{r.Mode}
		for _, u := range rows[0].Units {
			line = append(line, r.Metrics[u])
		}
		body = append(body, line)
	}
	if markdown {
		return rpt.Markdown(headers, body)
	}
	return rpt.Text(headers, body)
}
