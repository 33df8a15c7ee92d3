package mysqllock

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/stats"
	"github.com/quiesce/quiesce/test/fixture"
	"github.com/quiesce/quiesce/test/fixture/mariadb"
)

// BenchmarkReplicaModes compares the lock modes on the same MariaDB replica
// while its primary takes a steady replicated write load (two writers,
// INSERT every ~1 ms each). Each cycle: Acquire, hold 100 ms (a snapshot's
// CreateSnapshots), Release. Run with -benchtime 1x; the cycle count is
// inside. Metrics per mode:
//   - held_p50_ms/held_max_ms: Acquire wall time, i.e. time to held
//   - source_stall_max_ms: the longest single INSERT on the primary during
//     that mode's cycles (what the application's writers feel)
//   - catchup_p50_ms/catchup_max_ms: from Release until the replica has
//     applied everything the primary had written at Release: the lag one
//     cycle adds on top of the hold itself (the applier waits during the
//     hold under every mode)
//   - idle_catchup_p50_ms: the same wait with no cycle, the baseline
//   - long_reader_held_max_ms / reader_stall_max_ms: three more cycles,
//     each taken while a 1 s SELECT runs on the replica (--long-query-limit
//     off), and the longest point SELECT of a reader on the replica meanwhile
func BenchmarkReplicaModes(b *testing.B) {
	r := fixture.StartReplicationForTest(b, mariadb.ReplicationOptions{})
	if err := r.Primary().Exec("CREATE DATABASE lk", "CREATE TABLE lk.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT, pad VARCHAR(100)) ENGINE=InnoDB"); err != nil {
		b.Fatal(err)
	}
	pdb := primaryDB(b, r)
	pdb.SetMaxOpenConns(4)
	rdb, err := r.Replica.DB()
	if err != nil {
		b.Fatal(err)
	}
	defer rdb.Close()
	load := startLoad(pdb, "INSERT INTO lk.t (v, pad) VALUES (1, REPEAT('x', 100))", 2)
	defer load.stop()
	caughtUp(b, r)
	readers := startLoad(rdb, "SELECT v FROM lk.t WHERE id = 1", 1)
	defer readers.stop()
	for _, mode := range []string{contract.LockReplica, contract.LockFTWRL, contract.LockBackupStage} {
		b.Run(mode, func(b *testing.B) {
			benchReplicaCycles(b, r, pdb, rdb, load, mode)
			benchLongReader(b, r, rdb, readers, mode)
		})
	}
}

// holdBriefly takes the lock, holds it 100 ms and releases it; it returns
// how long taking it took, in ms.
func holdBriefly(b *testing.B, o Options) float64 {
	start := time.Now()
	l, _, err := Acquire(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	took := ms(time.Since(start))
	time.Sleep(100 * time.Millisecond)
	if err := l.Release(context.Background()); err != nil {
		b.Fatal(err)
	}
	return took
}

func benchReplicaCycles(b *testing.B, r *mariadb.Replication, pdb, rdb *sql.DB, load *loadLoop, mode string) {
	o := opts(r.Replica, mode)
	cycles := max(10, b.N)
	var held, catchup, idle []float64
	load.resetMaxStall()
	b.ResetTimer()
	for i := 0; i < cycles; i++ {
		idle = append(idle, ms(waitReplicaCaughtUp(b, pdb, rdb)))
		held = append(held, holdBriefly(b, o))
		catchup = append(catchup, ms(waitReplicaCaughtUp(b, pdb, rdb)))
		time.Sleep(50 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(stats.Percentile(held, 50), "held_p50_ms")
	b.ReportMetric(stats.Percentile(held, 100), "held_max_ms")
	b.ReportMetric(ms(load.maxStall()), "source_stall_max_ms")
	b.ReportMetric(stats.Percentile(catchup, 50), "catchup_p50_ms")
	b.ReportMetric(stats.Percentile(catchup, 100), "catchup_max_ms")
	b.ReportMetric(stats.Percentile(idle, 50), "idle_catchup_p50_ms")
	b.ReportMetric(float64(cycles), "cycles")
}

// waitReplicaCaughtUp reads the primary's GTID position now and waits until
// the replica has applied it, returning how long that took.
func waitReplicaCaughtUp(b *testing.B, pdb, rdb *sql.DB) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, took, err := mariadb.CatchUp(ctx, pdb, rdb)
	if err != nil {
		b.Fatal(err)
	}
	return took
}

// benchLongReader takes three cycles, each while a 1 s SELECT runs on the
// replica, and reports the longest time to held and the longest point read
// on the replica meanwhile (FTWRL waits for the running SELECT to close its
// table, and every new reader of that table waits behind FTWRL).
func benchLongReader(b *testing.B, r *mariadb.Replication, rdb *sql.DB, readers *loadLoop, mode string) {
	o := opts(r.Replica, mode)
	o.LongQueryLimit = 0
	var held []float64
	readers.resetMaxStall()
	for i := 0; i < 3; i++ {
		long := make(chan error, 1)
		go func() {
			_, err := rdb.ExecContext(context.Background(), "SELECT SLEEP(1) FROM lk.t LIMIT 1")
			long <- err
		}()
		time.Sleep(100 * time.Millisecond)
		held = append(held, holdBriefly(b, o))
		if err := <-long; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(stats.Percentile(held, 100), "long_reader_held_max_ms")
	b.ReportMetric(ms(readers.maxStall()), "reader_stall_max_ms")
}

// loadLoop runs one statement in a loop on n connections, recording the
// longest single execution.
type loadLoop struct {
	mu    sync.Mutex
	worst time.Duration
	quit  chan struct{}
	wg    sync.WaitGroup
}

func startLoad(db *sql.DB, stmt string, n int) *loadLoop {
	l := &loadLoop{quit: make(chan struct{})}
	for w := 0; w < n; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.quit:
					return
				case <-time.After(time.Millisecond):
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				start := time.Now()
				_, err := db.ExecContext(ctx, stmt)
				cancel()
				if err == nil {
					l.mu.Lock()
					l.worst = max(l.worst, time.Since(start))
					l.mu.Unlock()
				}
			}
		}()
	}
	return l
}

func (l *loadLoop) resetMaxStall() {
	l.mu.Lock()
	l.worst = 0
	l.mu.Unlock()
}

func (l *loadLoop) maxStall() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.worst
}

func (l *loadLoop) stop() {
	close(l.quit)
	l.wg.Wait()
}
