package mysqllock

import (
	"context"
	"github.com/quiesce/quiesce/internal/stats"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
)

// BenchmarkAcquireRelease measures full lock cycles against the real
// mariadbd under a light write load (two writers inserting back to back,
// blocked while the lock is held). Run by `make bench` with -benchtime 1x,
// so the cycle count (>= 50) is inside. Metrics:
//   - acquire_p50_ms/p99: Acquire wall time (connect, session setup,
//     long-query check, lock, position)
//   - lock_p50_ms/p99: the lock statement(s) alone (LockInfo.acquired_ms)
//   - release_p50_ms/p99: Release wall time (unlock + close)
//   - resume_p50_ms: Release → the next write completes
func BenchmarkAcquireRelease(b *testing.B) {
	for _, mode := range []string{contract.LockFTWRL, contract.LockBackupStage} {
		b.Run(mode, func(b *testing.B) { benchCycles(b, mode) })
	}
}

func benchCycles(b *testing.B, mode string) {
	m, db := server(b)
	exec(b, db, "CREATE DATABASE IF NOT EXISTS lk", "CREATE TABLE IF NOT EXISTS lk.bench (id INT AUTO_INCREMENT PRIMARY KEY, v INT, pad VARCHAR(100))")
	db.SetMaxOpenConns(4)

	// Light write load: each writer records when its last write completed.
	ctx, stop := context.WithCancel(context.Background())
	var lastWrite atomic.Int64
	var writes atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := db.ExecContext(ctx, "INSERT INTO lk.bench (v, pad) VALUES (1, REPEAT('x', 100))"); err == nil {
					writes.Add(1)
					lastWrite.Store(time.Now().UnixNano())
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	defer func() { stop(); wg.Wait() }()

	o := opts(m, mode)
	o.LongQueryLimit = 10 * time.Second
	cycles := max(50, b.N)
	var acquire, lock, release, resume []float64
	b.ResetTimer()
	for i := 0; i < cycles; i++ {
		start := time.Now()
		l, info, err := Acquire(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		acquire = append(acquire, ms(time.Since(start)))
		lock = append(lock, info.AcquiredMS)
		time.Sleep(5 * time.Millisecond) // hold briefly, as a snapshot would
		rs := time.Now()
		if err := l.Release(context.Background()); err != nil {
			b.Fatal(err)
		}
		release = append(release, ms(time.Since(rs)))
		// Wait for the first write that completes after the release.
		for deadline := time.Now().Add(2 * time.Second); lastWrite.Load() < rs.UnixNano(); {
			if time.Now().After(deadline) {
				b.Fatal("writes did not resume within 2s of Release")
			}
			time.Sleep(100 * time.Microsecond)
		}
		resume = append(resume, ms(time.Duration(lastWrite.Load()-rs.UnixNano())))
		time.Sleep(10 * time.Millisecond) // let writes flow between cycles
	}
	b.StopTimer()
	stats.ReportPercentiles(b, "acquire", acquire, "ms", 50, 99)
	stats.ReportPercentiles(b, "lock", lock, "ms", 50, 99)
	stats.ReportPercentiles(b, "release", release, "ms", 50, 99)
	stats.ReportPercentiles(b, "resume", resume, "ms", 50)
	b.ReportMetric(float64(cycles), "cycles")
	b.ReportMetric(float64(writes.Load()), "writes")
	b.ReportMetric(ms(srvStartup), "server_startup_ms")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
