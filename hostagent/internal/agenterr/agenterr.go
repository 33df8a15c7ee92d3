// Package agenterr holds the sentinel errors that hostagent's main maps to exit
// codes (report.Exit*). Packages wrap them with context; only main decides codes.
package agenterr

import (
	"errors"
	"fmt"
)

var (
	// ErrUsage: bad usage or input; nothing was changed (exit 2).
	ErrUsage = errors.New("bad usage")
	// ErrBusy: another run holds one of the mounts (exit 3).
	ErrBusy = errors.New("busy")
	// ErrLate: the thaw came after the deadline; the fail-safe had already thawed (exit 4).
	ErrLate = errors.New("thaw after deadline")
	// ErrLockWait: the MySQL lock was not acquired within --lock-wait, or a long
	// running query made taking it unsafe (exit 5).
	ErrLockWait = errors.New("mysql lock not acquired")
	// ErrVerifyFailed: verify ran and the restored set failed a check (exit 6).
	ErrVerifyFailed = errors.New("verification failed")
)

// Usagef returns an ErrUsage-wrapping error with a one-line message naming the bad value.
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}
