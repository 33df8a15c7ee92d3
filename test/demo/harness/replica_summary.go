package harness

import (
	"fmt"
	"strings"
	"time"

	rpt "github.com/quiesce/quiesce/test/demo/report"
)

// replicaRows is the at-a-glance table: one row per snapshot and its clone.
func replicaRows(res *ReplicaResult) [][]string {
	var rows [][]string
	for i, s := range res.Snapshots {
		row := []string{s.Of, s.Freeze.Lock.Mode, "-", "-", "-", "-", "-", "-", "-"}
		if !s.Freeze.StartedAt.IsZero() {
			row[2] = fmt.Sprintf("%.1f", s.Freeze.HeldMS)
			row[4] = rpt.Ms(s.Stall.Max)
		}
		if r := s.Freeze.Lock.Replication; r != nil && len(r.StoppedAppliers) > 0 && s.Thaw.RunID != "" {
			row[3] = fmt.Sprintf("%.1f", s.Thaw.HeldMS)
		}
		if i < len(res.Clones) {
			c := res.Clones[i]
			row[5] = cloneOutcome(c)
			if c.CaughtUp > 0 {
				row[6] = secs(c.CaughtUp)
			}
		}
		if i < len(res.Checks) && len(res.Checks[i].States) > 0 {
			row[7], row[8] = yesNo(res.Checks[i].ChecksumsEqual()), yesNo(res.Checks[i].GTIDEqual())
		}
		rows = append(rows, row)
	}
	return rows
}

func cloneOutcome(c *Clone) string {
	switch {
	case c.Exit == 0 && c.Report.OK:
		return secs(c.Replicating)
	case c.Exit > 0:
		return fmt.Sprintf("FAILED (exit %d)", c.Exit)
	default:
		return "FAILED"
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

var replicaHeaders = []string{"snapshot of", "lock mode", "time to held ms", "applier stopped ms", "writer max stall ms",
	"clone set → replicating", "→ lag 0", "checksums equal", "GTID equal"}

// ReplicaSummaryText is the summary `demo replica` prints.
func ReplicaSummaryText(res *ReplicaResult) string {
	var b strings.Builder
	b.WriteString(rpt.Text(replicaHeaders, replicaRows(res)))
	for _, c := range res.Checks {
		b.WriteString("\n" + stateText(c))
	}
	if len(res.Bench) > 0 {
		b.WriteString("\nlock modes side by side on the replica (p50 / max ms over the cycles, writers on the primary):\n")
		b.WriteString(rpt.Text(benchHeaders, benchRows(res.Bench)))
	}
	if t := goBenchTable(res.GoBench, false); t != "" {
		b.WriteString("\nBenchmarkReplicaModes (go test -bench, fixture replica, 2 INSERT writers):\n" + t)
	}
	for _, p := range res.Problems {
		b.WriteString("\nFAILED: " + p)
	}
	verdict := "PASSED"
	if res.Failed() {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "\n%s in %s\n%s\n", verdict, res.Duration.Round(time.Millisecond), res.Machine)
	return b.String()
}

// stateText lists each server's GTID position and checksums after one clone.
func stateText(c Comparison) string {
	headers := []string{"after " + c.After, "GTID"}
	headers = append(headers, bankTables...)
	var rows [][]string
	for _, s := range c.States {
		row := []string{s.Name, s.GTID}
		for _, t := range bankTables {
			row = append(row, s.Checksums[t])
		}
		rows = append(rows, row)
	}
	return rpt.Text(headers, rows)
}

// ReplicaMarkdown is the report section `make bench` appends to
// bin/bench-report.md.
func ReplicaMarkdown(res *ReplicaResult) string {
	var b strings.Builder
	b.WriteString("## Replicas\n\n")
	b.WriteString("A primary and a GTID replica, each `mariadbd` on its own loop XFS volume in the reflink pool, the bank writer on the primary. ")
	b.WriteString("Snapshots by `hostagent freeze` → `FICLONE` of the volume image → `hostagent thaw`; clones by `hostagent clone` on a `FICLONE` of the snapshot image, attached as `vol-….img`.\n\n")
	b.WriteString(rpt.Markdown(replicaHeaders, replicaRows(res)))
	if len(res.Bench) > 0 {
		b.WriteString("\n### Lock modes on the same replica (p50 / max ms)\n\n")
		b.WriteString("Interleaved cycles of the replica under the primary's bank writers. *applier stopped/blocked* is the lock's hold; ")
		b.WriteString("*replica behind at thaw* is how many of the primary's transactions it had not applied when the thaw returned; ")
		b.WriteString("*thaw → lag normal* is until it has applied what the primary had then (*idle catch-up* is the same wait with no cycle).\n\n")
		b.WriteString(rpt.Markdown(benchHeaders, benchRows(res.Bench)))
	}
	if t := goBenchTable(res.GoBench, true); t != "" {
		b.WriteString("\n### BenchmarkReplicaModes (`go test -bench`, fixture primary/replica, 2 INSERT writers)\n\n" + t)
	}
	fmt.Fprintf(&b, "\n%s\n", res.Machine)
	return b.String()
}
