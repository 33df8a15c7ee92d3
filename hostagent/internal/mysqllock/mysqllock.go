package mysqllock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quiesce/quiesce/contract"
)

// Lock is a held MySQL lock on one pinned connection. The lock lives exactly
// as long as that connection: Release undoes it explicitly, and the server
// drops it by itself if the process holding the connection dies.
type Lock struct {
	mu       sync.Mutex
	s        *session
	mode     string
	id       uint64
	released bool
	err      error

	// The watch (see watch): releasing stops it from reading Release's own
	// close as a loss; lost is closed when it finds the lock gone.
	acquired  time.Time
	releasing atomic.Bool
	stop      chan struct{}
	lost      chan struct{}
	loss      atomic.Pointer[contract.LockLoss]
	// appliers (mode replica) are the channels whose SQL thread Release
	// starts again; opts reconnects for that when the connection broke.
	appliers []string
	opts     Options
}

// Acquire connects, checks for long-running statements, takes the lock and
// reads the binary log position under it. With mode `none` (or `auto` that
// Resolve turns into none) it returns a nil *Lock and LockInfo{Mode: none}.
// When the lock is not acquired in time, or a long query refuses it, the
// error wraps contract.ErrLockWait (exit 5). Connection and authentication
// failures are plain errors. On any error nothing is left held on the server.
func Acquire(ctx context.Context, o Options) (*Lock, contract.LockInfo, error) {
	info := contract.LockInfo{Mode: o.Mode, Requested: o.Mode}
	if err := o.Validate(); err != nil {
		return nil, info, err
	}
	o, involved := Resolve(o)
	if !involved {
		info.Mode = contract.LockNone
		return nil, info, nil
	}
	s, err := connect(ctx, o)
	if staleAutoSocket(o, err) {
		info.Mode = contract.LockNone
		return nil, info, nil
	}
	if err != nil {
		return nil, info, err
	}
	info.ServerVersion = s.server.Version
	info.ConnectionID = s.id
	mode, err := s.server.concreteMode(o.Mode)
	if err != nil {
		s.close()
		return nil, info, err
	}
	info.Mode = mode
	log := slog.With("mysql", s.cfg, "connection_id", s.id, "mode", mode)
	if ri, err := s.readRestoreInfo(ctx); err != nil {
		log.Warn("restore settings not read; verify will need them as flags", "err", err)
	} else {
		info.Restore = ri
	}
	if mode == contract.LockReplica {
		// No global lock, so nothing for a long query to hold up.
		return s.acquireReplica(ctx, o, info, log)
	}

	if o.LongQueryLimit > 0 {
		qctx, cancel := context.WithTimeout(ctx, stepTimeout)
		killed, err := s.handleLongQueries(qctx, o, log)
		cancel()
		info.KilledQueries = killed
		if err != nil {
			s.close()
			return nil, info, err
		}
	}

	started := time.Now()
	if err := s.lock(ctx, mode, o.LockWait); err != nil {
		s.undo(mode, log)
		return nil, info, err
	}
	info.AcquiredMS = float64(time.Since(started).Microseconds()) / 1000
	// Writers are blocked from here on: bound every statement.
	pctx, cancel := context.WithTimeout(ctx, stepTimeout)
	err = s.readPosition(pctx, mode, &info, log)
	if err == nil {
		err = s.addReplication(pctx, &info, log)
	}
	cancel()
	if err != nil {
		s.undo(mode, log)
		return nil, info, err
	}
	log.Info("mysql lock held", "acquired_ms", info.AcquiredMS, "binlog_file", info.BinlogFile,
		"binlog_pos", info.BinlogPos, "gtid", info.GTIDExecuted)
	l := &Lock{s: s, mode: mode, id: s.id, acquired: started, stop: make(chan struct{}), lost: make(chan struct{})}
	go l.watch(watchEvery)
	return l, info, nil
}

// watchEvery: the pinned connection is pinged this often during the hold. A
// COM_PING is one round trip the server answers without touching a table or
// the disk (tens of microseconds on a local socket), so a lock killed with
// its connection, or a server that went away, is seen within ~100 ms.
const watchEvery = 100 * time.Millisecond

// watch pings the lock's connection until Release. The lock lives exactly as
// long as the connection (the server drops it with the thread), so a failed
// ping means the lock is gone: writes may commit from then on. No context on
// the ping: go-sql-driver closes a connection whose context ends, which
// would itself drop the lock; the driver's read/write timeouts bound it.
func (l *Lock) watch(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		err := l.s.conn.PingContext(context.Background())
		if err == nil {
			continue
		}
		if l.releasing.Load() {
			return
		}
		now := time.Now()
		l.loss.Store(&contract.LockLoss{At: now.UTC(), AfterMS: float64(now.Sub(l.acquired).Microseconds()) / 1000,
			Reason: l.lossReason(err)})
		close(l.lost)
		slog.Warn("mysql lock lost during the hold", "connection_id", l.id, "err", err)
		return
	}
}

// lossReason tells a killed connection from a server that went away, by
// trying a fresh connection (bounded; only on this failure path).
func (l *Lock) lossReason(pingErr error) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	db, err := open(l.s.cfg, time.Second)
	if err == nil {
		defer db.Close()
		err = db.PingContext(ctx)
	}
	if err != nil {
		return fmt.Sprintf("lock connection %d lost (%v) and the server does not answer (%v): it went away", l.id, pingErr, err)
	}
	return fmt.Sprintf("lock connection %d lost (%v) while the server is up: the connection was killed", l.id, pingErr)
}

// Lost is closed when the watch found the lock gone during the hold.
func (l *Lock) Lost() <-chan struct{} {
	if l == nil {
		return nil
	}
	return l.lost
}

// Loss says when and why the lock was lost; nil while it holds (or for nil).
func (l *Lock) Loss() *contract.LockLoss {
	if l == nil {
		return nil
	}
	return l.loss.Load()
}

// Release undoes the lock (UNLOCK TABLES / BACKUP STAGE END / UNLOCK INSTANCE)
// and closes the connection. If the statement cannot be sent (connection
// broken), the server connection is killed by id from a fresh connection, so
// the lock is gone either way when Release returns nil. Safe on a nil Lock;
// idempotent (later calls return the first result).
func (l *Lock) Release(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return l.err
	}
	l.released = true
	if l.s == nil {
		return nil
	}
	l.releasing.Store(true)
	if l.stop != nil {
		close(l.stop)
	}
	// Release runs on cleanup paths where ctx may already be cancelled.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if l.mode == contract.LockReplica {
		l.err = l.releaseReplica(rctx)
		return l.err
	}
	start := time.Now()
	_, err := l.s.conn.ExecContext(rctx, unlockStatement(l.mode))
	l.s.close()
	if err != nil {
		// The connection is unusable; make sure the server thread (and its
		// lock) is gone rather than trusting the server to notice.
		if kerr := killConnection(rctx, l.s.cfg, l.id); kerr != nil {
			l.err = fmt.Errorf("mysql unlock %s (connection %d): %v; kill connection: %w", l.mode, l.id, err, kerr)
			return l.err
		}
	}
	slog.Debug("mysql lock released", "mode", l.mode, "connection_id", l.id, "release_ms", time.Since(start).Milliseconds())
	return nil
}

// ConnectionID is the server's thread id of the pinned connection (0 for nil).
func (l *Lock) ConnectionID() uint64 {
	if l == nil {
		return 0
	}
	return l.id
}

// Mode is the concrete lock held ("" for nil).
func (l *Lock) Mode() string {
	if l == nil {
		return ""
	}
	return l.mode
}

const (
	releaseTimeout = 5 * time.Second
	// stepTimeout bounds the statements around the lock (process list,
	// kills, position), which answer in milliseconds on a healthy server.
	stepTimeout = 5 * time.Second
)

// lock runs the lock statements under two bounds: the session's
// lock_wait_timeout (whole seconds, rounded up) and a watchdog that kills the
// statement from a second connection when --lock-wait is not a whole number
// of seconds, or when the server overruns it by a second (a wait that
// lock_wait_timeout does not cover). Whatever happens, a pending lock request
// never outlives --lock-wait by much, because while it waits it blocks every
// writer too.
func (s *session) lock(ctx context.Context, mode string, wait time.Duration) error {
	grace := time.Second
	if wait%time.Second != 0 {
		grace = 0
	}
	var fired atomic.Bool
	killed := make(chan struct{})
	timer := time.AfterFunc(wait+grace, func() {
		defer close(killed)
		fired.Store(true)
		kctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := killQuery(kctx, s.cfg, s.id); err != nil {
			slog.Warn("mysql lock watchdog: kill query failed", "connection_id", s.id, "err", err)
		}
	})
	var err error
	for _, stmt := range lockStatements(mode) {
		if _, err = s.conn.ExecContext(ctx, stmt); err != nil {
			err = fmt.Errorf("%s: %w", stmt, err)
			break
		}
	}
	if !timer.Stop() {
		<-killed
	}
	if fired.Load() {
		if err == nil {
			err = errors.New("watchdog fired as the lock was taken")
		}
		return &LockWaitError{Mode: mode, Wait: wait, Err: err}
	}
	if err != nil && isLockWaitTimeout(err) {
		return &LockWaitError{Mode: mode, Wait: wait, Err: err}
	}
	if err != nil {
		return fmt.Errorf("mysql lock %s: %w", mode, err)
	}
	return nil
}

// undo releases whatever a failed Acquire may hold and closes the
// connection. The unlock statement is harmless when nothing is held.
func (s *session) undo(mode string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	_, err := s.conn.ExecContext(ctx, unlockStatement(mode))
	s.close()
	if err != nil && !isSQLError(err) {
		// Connection broken mid-statement: the server thread may still wait
		// for (or hold) the lock. Kill it by id.
		if kerr := killConnection(ctx, s.cfg, s.id); kerr != nil {
			log.Error("mysql lock undo: could not kill the lock connection", "err", kerr)
		}
	}
}
