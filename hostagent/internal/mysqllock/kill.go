package mysqllock

import (
	"context"
	"fmt"
	"time"
)

// KillConnection kills server connection id (normally a Lock's
// ConnectionID) from a fresh connection made with the same options, and waits
// (bounded by ctx, at most 5 s) until the thread is gone, i.e. its lock is
// released. A connection that no longer exists is success. The guardian uses
// it when the holder cannot release the lock itself.
func KillConnection(ctx context.Context, o Options, id uint64) error {
	if id == 0 {
		return fmt.Errorf("mysql kill connection: no connection id")
	}
	c, err := o.target()
	if err != nil {
		return err
	}
	return killConnection(ctx, c, id)
}

func killConnection(ctx context.Context, c connConfig, id uint64) error {
	return kill(ctx, c, id, true)
}

func killQuery(ctx context.Context, c connConfig, id uint64) error {
	return kill(ctx, c, id, false)
}

func kill(ctx context.Context, c connConfig, id uint64, connection bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	db, err := open(c, time.Second)
	if err != nil {
		return err
	}
	defer db.Close()
	what := "QUERY"
	if connection {
		what = "CONNECTION"
	}
	stmt := fmt.Sprintf("KILL %s %d", what, id)
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		if sqlErrorNumber(err) == errNoSuchThread {
			return nil
		}
		return fmt.Errorf("mysql %s: %s: %w", c, stmt, err)
	}
	if !connection {
		return nil
	}
	// KILL only flags the thread; it releases its locks as it unwinds.
	for {
		var n int
		err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", id).Scan(&n)
		if err == nil && n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mysql %s: connection %d still present after KILL: %w", c, id, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
