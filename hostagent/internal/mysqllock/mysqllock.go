// Package mysqllock takes and releases the MySQL/MariaDB lock that makes a
// filesystem snapshot application-consistent, on one pinned connection.
package mysqllock

import (
	"context"
	"errors"
	"time"

	"github.com/quiesce/quiesce/report"
)

// Options are the MySQL flags of hostagent freeze/check.
type Options struct {
	Mode         string
	DefaultsFile string
	Socket       string
	User         string
	// Explicit is true when any MySQL option was given on the command line.
	Explicit        bool
	LockWait        time.Duration
	LongQueryLimit  time.Duration
	KillLongQueries bool
}

// Validate checks the options without touching the server.
func (o Options) Validate() error { return nil }

// Resolve turns `auto` with no MySQL option and no server socket into `none`.
func Resolve(o Options) (Options, bool) { return o, o.Mode != report.LockNone }

// Lock is a held MySQL lock on one pinned connection.
type Lock struct{ id uint64 }

// Acquire takes the lock.
func Acquire(ctx context.Context, o Options) (*Lock, report.LockInfo, error) {
	return nil, report.LockInfo{}, errors.New("not implemented")
}

// Release undoes the lock and closes the connection. Safe on nil; idempotent.
func (l *Lock) Release(ctx context.Context) error { return nil }

// ConnectionID is the server thread id of the pinned connection.
func (l *Lock) ConnectionID() uint64 {
	if l == nil {
		return 0
	}
	return l.id
}

// Check is the preflight: connect, resolve the mode, verify privileges.
func Check(ctx context.Context, o Options) (report.LockInfo, error) {
	return report.LockInfo{}, errors.New("not implemented")
}

// KillConnection kills a server connection by id (guardian fallback).
func KillConnection(ctx context.Context, o Options, id uint64) error {
	return errors.New("not implemented")
}
