package main

import (
	"testing"

	"github.com/quiesce/quiesce/internal/stats"
)

// BenchmarkVerifyOverhead runs `hostagent verify` (the real binary) on one
// restored loop XFS volume with a real mariadbd, and reports what verify
// itself costs beyond the server's work:
//
//	overhead_ms          process wall time − server start − CHECK TABLE − server shutdown
//	in_process_ms        the report's duration_ms − the same three (exec and Go start excluded)
//	start_ms, check_tables_ms, shutdown_ms   the server's part, for scale
//
// Medians over b.N runs (the first run includes crash recovery). Target:
// overhead ≤ 200 ms. Run with -benchtime=5x: each iteration starts a server.
func BenchmarkVerifyOverhead(b *testing.B) {
	snap := makeSnapshot(b, "xfs", snapshotOptions{})
	e := newVerifyEnv(b)
	// Each run's server starts a new binlog file on the volume, so only the
	// first run could match the tagged file; the GTID stays the tagged one.
	args := e.args(snap, "--expect-gtid", snap.gtid)
	var overhead, inProcess, start, check, shutdown []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, rep := e.verify(args...)
		if r.code != 0 {
			b.Fatalf("exit %d: %q %s", r.code, rep.Problems, r.stderr)
		}
		server := rep.TimingsMS["start"] + rep.TimingsMS["check_tables"] + rep.TimingsMS["shutdown"]
		overhead = append(overhead, float64(r.elapsed.Microseconds())/1000-server)
		inProcess = append(inProcess, rep.DurationMS-server)
		start = append(start, rep.TimingsMS["start"])
		check = append(check, rep.TimingsMS["check_tables"])
		shutdown = append(shutdown, rep.TimingsMS["shutdown"])
	}
	b.StopTimer()
	b.ReportMetric(median(overhead), "overhead_ms")
	b.ReportMetric(median(inProcess), "in_process_ms")
	b.ReportMetric(median(start), "start_ms")
	b.ReportMetric(median(check), "check_tables_ms")
	b.ReportMetric(median(shutdown), "shutdown_ms")
}

func median(v []float64) float64 { return stats.Percentile(v, 50) }
