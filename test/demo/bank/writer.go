package bank

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// Commit is one committed transfer as the writer saw it.
type Commit struct {
	ID    int64     // transfer id (gap-free sequence)
	Start time.Time // BEGIN sent
	End   time.Time // COMMIT returned
}

// Latency is how long the transaction took, from BEGIN to COMMIT's return.
func (c Commit) Latency() time.Duration { return c.End.Sub(c.Start) }

// Writer runs transfer transactions on Workers connections of their own
// until its context ends, recording every commit.
type Writer struct {
	DB        *sql.DB
	Workers   int           // concurrent connections (default 4)
	Accounts  int           // account ids are 1..Accounts (default 1000)
	TxTimeout time.Duration // bound on one transaction (default 2m: longer than any freeze deadline)

	mu       sync.Mutex
	commits  []Commit
	declined int64 // transfers rolled back for insufficient funds
	errCount int64
	firstErr []error
}

// Run blocks until ctx ends. Errors of single transactions are counted (see
// Errors), not fatal: a writer that stops at the first hiccup would hide
// exactly the stalls the demo wants to measure.
func (w *Writer) Run(ctx context.Context) {
	if w.Workers <= 0 {
		w.Workers = 4
	}
	if w.Accounts <= 1 {
		w.Accounts = 1000
	}
	if w.TxTimeout <= 0 {
		w.TxTimeout = 2 * time.Minute
	}
	var wg sync.WaitGroup
	for i := 0; i < w.Workers; i++ {
		wg.Add(1)
		go func(worker int) {
			defer wg.Done()
			w.work(ctx, worker)
		}(i + 1)
	}
	wg.Wait()
}

func (w *Writer) work(ctx context.Context, worker int) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(worker)))
	var conn *sql.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for ctx.Err() == nil {
		if conn == nil {
			c, err := w.DB.Conn(ctx)
			if err != nil {
				w.fail(ctx, fmt.Errorf("writer %d: connect: %w", worker, err))
				continue
			}
			conn = c
		}
		from := 1 + rng.IntN(w.Accounts)
		to := 1 + rng.IntN(w.Accounts-1)
		if to >= from {
			to++
		}
		amount := int64(1 + rng.IntN(100))
		start := time.Now()
		id, err := w.transfer(ctx, conn, worker, from, to, amount)
		end := time.Now()
		switch {
		case err == nil && id > 0:
			w.mu.Lock()
			w.commits = append(w.commits, Commit{ID: id, Start: start, End: end})
			w.mu.Unlock()
		case err == nil:
			w.mu.Lock()
			w.declined++
			w.mu.Unlock()
		case ctx.Err() != nil:
			return
		default:
			// The connection may be unusable (killed, timed out): start afresh.
			conn.Close()
			conn = nil
			w.fail(ctx, fmt.Errorf("writer %d: transfer: %w", worker, err))
		}
	}
}

// transfer moves amount from one account to another and logs it, in one
// transaction. It returns the transfer id, or 0 when the payer lacked funds
// (rolled back: the id goes back to the sequence).
func (w *Writer) transfer(ctx context.Context, conn *sql.Conn, worker, from, to int, amount int64) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, w.TxTimeout)
	defer cancel()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	res, err := tx.ExecContext(ctx, `UPDATE bank.transfer_seq SET last_id = LAST_INSERT_ID(last_id + 1) WHERE id = 1`)
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	res, err = tx.ExecContext(ctx, `UPDATE bank.accounts SET balance = balance - ? WHERE id = ? AND balance >= ?`, amount, from, amount)
	if err != nil {
		return 0, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, err
	} else if n != 1 {
		return 0, tx.Rollback()
	}
	if _, err := tx.ExecContext(ctx, `UPDATE bank.accounts SET balance = balance + ? WHERE id = ?`, amount, to); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO bank.transfers (id, from_account, to_account, amount, writer) VALUES (?, ?, ?, ?, ?)`, id, from, to, amount, worker); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return id, nil
}

func (w *Writer) fail(ctx context.Context, err error) {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return
	}
	w.mu.Lock()
	w.errCount++
	if len(w.firstErr) < 5 {
		w.firstErr = append(w.firstErr, err)
	}
	w.mu.Unlock()
	select { // do not spin on a dead server
	case <-ctx.Done():
	case <-time.After(100 * time.Millisecond):
	}
}

// Commits returns a copy of the commits so far, in commit order.
func (w *Writer) Commits() []Commit {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := append([]Commit(nil), w.commits...)
	sort.Slice(out, func(i, j int) bool { return out[i].End.Before(out[j].End) })
	return out
}

// Count is the number of commits so far.
func (w *Writer) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.commits)
}

// Errors returns the number of failed transactions and the first few errors.
func (w *Writer) Errors() (int64, []error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errCount, append([]error(nil), w.firstErr...)
}

// Declined is the number of transfers rolled back for insufficient funds.
func (w *Writer) Declined() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.declined
}

// Stall is the longest commit latency in a set of commits, and when it ended.
type Stall struct {
	Max   time.Duration
	At    time.Time
	ID    int64
	Count int
}

// MaxStall returns the slowest commit among those that ended in [from, to]
// (zero times mean unbounded).
func MaxStall(commits []Commit, from, to time.Time) Stall {
	return slowest(commits, func(c Commit) bool {
		return (from.IsZero() || !c.End.Before(from)) && (to.IsZero() || !c.End.After(to))
	})
}

// StallDuring returns the slowest commit whose transaction overlapped
// [from, to]: the writer's experience of one freeze window.
func StallDuring(commits []Commit, from, to time.Time) Stall {
	return slowest(commits, func(c Commit) bool { return !c.End.Before(from) && !c.Start.After(to) })
}

// slowest is the slowest of the commits counted, and how many were.
func slowest(commits []Commit, counted func(Commit) bool) Stall {
	var s Stall
	for _, c := range commits {
		if !counted(c) {
			continue
		}
		s.Count++
		if l := c.Latency(); l > s.Max {
			s.Max, s.At, s.ID = l, c.End, c.ID
		}
	}
	return s
}

// FirstCommitAfter returns the first commit ending after t (ok=false if none):
// "writes flowing again" after a thaw.
func FirstCommitAfter(commits []Commit, t time.Time) (Commit, bool) {
	for _, c := range commits {
		if c.End.After(t) {
			return c, true
		}
	}
	return Commit{}, false
}
