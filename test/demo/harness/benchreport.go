package harness

import (
	"fmt"
	"strings"
	"time"

	rpt "github.com/quiesce/quiesce/test/demo/report"
)

// pick collects one field of the successful samples.
func pick(m *Method, f func(Sample) time.Duration) rpt.Dist {
	var ds []time.Duration
	for _, s := range m.Samples {
		if s.Err == "" && !s.Start.IsZero() {
			ds = append(ds, f(s))
		}
	}
	return rpt.Summarize(ds)
}

func failures(m *Method) (n int, first string) {
	for _, s := range m.Samples {
		if s.Err != "" {
			if n == 0 {
				first = s.Err
			}
			n++
		}
	}
	return n, first
}

// BenchMarkdown renders the benchmark report.
func BenchMarkdown(b *BenchResult) string {
	var w strings.Builder
	ms := rpt.Ms
	fmt.Fprintf(&w, "# quiesce benchmark (`demo bench`)\n\n")
	fmt.Fprintf(&w, "%s.  \n", b.Machine)
	fmt.Fprintf(&w, "hostagent lock: %s.  \n", lockModeText(b.LockMode))
	fmt.Fprintf(&w, "Run %s; %d cycles of each method, interleaved (a, b, c, a, b, c, …) on the same MariaDB and the same writer: %d connection(s) doing transfer transactions (gap-free sequence row, sync_binlog=1, innodb_flush_log_at_trx_commit=1), %d commits at %.0f/s over the run, %d writer errors. Every method takes the same snapshot copy (FICLONE of the data volume's image in the reflink XFS pool).\n\n",
		b.StartedAt.UTC().Format(time.RFC3339), b.Cycles, b.Writers, b.Writer.Commits, b.Writer.TPS, b.Writer.Errors)

	if len(b.Methods) < 3 {
		return w.String()
	}
	direct, seed, lambda := b.Methods[0], b.Methods[1], b.Methods[2]
	type stats struct{ win, held, rel, cp, stall, over rpt.Dist }
	get := func(m *Method) stats {
		return stats{
			win:   pick(m, func(s Sample) time.Duration { return s.Window }),
			held:  pick(m, func(s Sample) time.Duration { return s.Held }),
			rel:   pick(m, func(s Sample) time.Duration { return s.Release }),
			cp:    pick(m, func(s Sample) time.Duration { return s.Copy }),
			stall: pick(m, func(s Sample) time.Duration { return s.Stall }),
			over:  pick(m, func(s Sample) time.Duration { return s.Window - s.Injected - s.Copy }),
		}
	}
	a, s, c := get(direct), get(seed), get(lambda)

	w.WriteString("## Write-blocked window and the writer's stall (ms)\n\n")
	row := func(m *Method, st stats) []string {
		n, _ := failures(m)
		return []string{"(" + m.Key + ") " + m.Name,
			ms(st.win.P50), ms(st.win.P99), ms(st.win.Max),
			ms(st.held.P50), ms(st.held.P99),
			ms(st.rel.P50), ms(st.rel.P99),
			ms(st.cp.P50),
			ms(st.stall.P50), ms(st.stall.P99), ms(st.stall.Max),
			fmt.Sprintf("%d/%d", st.win.N, len(m.Samples)), fmt.Sprint(n)}
	}
	w.WriteString(rpt.Markdown([]string{"method", "window p50", "p99", "max", "start→held p50", "p99", "release→writes flowing p50", "p99", "copy p50", "(d) writer max stall p50", "p99", "max", "ok", "failed"},
		[][]string{row(direct, a), row(seed, s), row(lambda, c)}))

	w.WriteString("\n## Ratios: seed recipe ÷ quiesce hostagent (same writer, same copy)\n\n")
	w.WriteString(rpt.Markdown([]string{"measure", "seed (b)", "quiesce (a)", "seed ÷ quiesce"}, [][]string{
		{"window p50", ms(s.win.P50), ms(a.win.P50), rpt.Ratio(s.win.P50, a.win.P50)},
		{"window p99", ms(s.win.P99), ms(a.win.P99), rpt.Ratio(s.win.P99, a.win.P99)},
		{"window max", ms(s.win.Max), ms(a.win.Max), rpt.Ratio(s.win.Max, a.win.Max)},
		{"start → held p50", ms(s.held.P50), ms(a.held.P50), rpt.Ratio(s.held.P50, a.held.P50)},
		{"release → writes flowing p50", ms(s.rel.P50), ms(a.rel.P50), rpt.Ratio(s.rel.P50, a.rel.P50)},
		{"writer max stall p50", ms(s.stall.P50), ms(a.stall.P50), rpt.Ratio(s.stall.P50, a.stall.P50)},
		{"writer max stall p99", ms(s.stall.P99), ms(a.stall.P99), rpt.Ratio(s.stall.P99, a.stall.P99)},
	}))

	w.WriteString("\n## (c) Orchestration overhead of the full cycle\n\n")
	inj := time.Duration(0)
	for _, x := range lambda.Samples {
		if x.Injected > 0 {
			inj = x.Injected
			break
		}
	}
	fmt.Fprintf(&w, "Injected AWS latency inside the window: %s ms (freeze result visible after the SSM delay, the CreateSnapshot(s) call, the thaw command's SSM delivery). Overhead = window − injected − snapshot copy: what the Lambda's polling, the SDK calls to the stand-in, the SSM document and hostagent add.\n\n", ms(inj))
	w.WriteString(rpt.Markdown([]string{"", "p50", "p99", "max", "n"}, [][]string{
		{"window (hostagent freeze start → thaw done)", ms(c.win.P50), ms(c.win.P99), ms(c.win.Max), fmt.Sprint(c.win.N)},
		{"orchestration overhead", ms(c.over.P50), ms(c.over.P99), ms(c.over.Max), fmt.Sprint(c.over.N)},
		{"window ÷ quiesce direct (a), p50", rpt.Ratio(c.win.P50, a.win.P50), "", "", ""},
	}))

	w.WriteString(hotRowMarkdown(b))
	w.WriteString(verifyMarkdown(b.Verify))

	w.WriteString(failuresMarkdown(b))
	w.WriteString(benchDefinitions)
	return w.String()
}

func lockModeText(mode string) string {
	switch mode {
	case "backup-stage":
		return "backup-stage (MariaDB `BACKUP STAGE START` + `BLOCK_COMMIT`: commits wait, statements run)"
	case "ftwrl":
		return "ftwrl (`FLUSH TABLES WITH READ LOCK`)"
	case "":
		return "unknown (no successful hostagent freeze)"
	}
	return mode
}

// hotRowMarkdown is the hot-row section ("" without hot-row cycles).
func hotRowMarkdown(b *BenchResult) string {
	if len(b.HotRow) != 2 {
		return ""
	}
	var w strings.Builder
	ms := rpt.Ms
	type stats struct{ win, stall rpt.Dist }
	fmt.Fprintf(&w, "\n## Hot row: %d writers queuing on the transfer sequence row\n\n", b.HotRowWriters)
	fmt.Fprintf(&w, "Every transfer takes the sequence row first and holds it to COMMIT (that is what keeps the log gap-free). Under `FLUSH TABLES WITH READ LOCK` the transaction holding the row waits for the global read lock while FTWRL waits for the statements queued behind that row lock: neither side's timeout is short (lock_wait_timeout defaults to a day, innodb_lock_wait_timeout to 50 s). The seed script gives FTWRL %s and then KILLs its session; hostagent's auto mode uses %s. Writer over this phase: %d commits, %d errors (%v).\n\n",
		b.SeedLockTimeout, lockModeText(b.LockMode), b.HotRowWriter.Commits, b.HotRowWriter.Errors, b.HotRowWriter.FirstErrs)
	hrow := func(m *Method, st stats) []string {
		n, first := failures(m)
		if len(first) > 120 {
			first = first[:120] + "…"
		}
		return []string{"(" + m.Key + ") " + m.Name, fmt.Sprintf("%d/%d", len(m.Samples)-n, len(m.Samples)), ms(st.win.P50), ms(st.win.Max), ms(st.stall.Max), first}
	}
	// Failed seed attempts keep their span, so include them in the window/stall columns.
	all := func(m *Method) stats {
		var win, stall []time.Duration
		for _, s := range m.Samples {
			if !s.Start.IsZero() {
				win, stall = append(win, s.Window), append(stall, s.Stall)
			}
		}
		return stats{win: rpt.Summarize(win), stall: rpt.Summarize(stall)}
	}
	w.WriteString(rpt.Markdown([]string{"method", "completed", "window p50", "window max", "writer max stall", "first failure"},
		[][]string{hrow(b.HotRow[0], all(b.HotRow[0])), hrow(b.HotRow[1], all(b.HotRow[1]))}))
	return w.String()
}

// failuresMarkdown lists the first failure of each method and of the verify runs.
func failuresMarkdown(b *BenchResult) string {
	var fails []string
	for _, m := range b.Methods {
		if n, first := failures(m); n > 0 {
			fails = append(fails, fmt.Sprintf("- (%s) %d failed; first: %s", m.Key, n, first))
		}
	}
	if v := b.Verify.firstFailure(); v != nil {
		fails = append(fails, fmt.Sprintf("- verify %s: %s", v.SnapshotID, strings.Join(v.Problems, "; ")))
	}
	if len(fails) == 0 {
		return ""
	}
	return "\n## Failures\n\n" + strings.Join(fails, "\n") + "\n"
}

// benchDefinitions ends the report.
const benchDefinitions = `
## Definitions

- **window**: (a) hostagent freeze command started → hostagent thaw command returned, measured by the bench around the two CLI calls; (b) ` + "`FLUSH TABLES WITH READ LOCK`" + ` sent → ` + "`UNLOCK TABLES`" + ` answered, measured inside demo/seed-baseline.sh; (c) hostagent's FreezeReport.started_at → ThawReport.thawed_at (the freeze and thaw ran through the Lambda, the stand-in and the SSM document).
- **start → held**: (a) the freeze command's run time (lock, binlog position, FIFREEZE, holder/guardian handed the hold); (b) FTWRL answered + ` + "`xfs_freeze -f`" + ` returned; (c) FreezeReport.held_ms.
- **release → writes flowing**: from the start of the thaw/unlock step to the first writer commit after it.
- **(d) writer max stall**: the slowest writer transaction (BEGIN → COMMIT returned) that overlapped the window.
- Percentiles are nearest-rank; with fewer than 100 samples p99 is the maximum.
`
