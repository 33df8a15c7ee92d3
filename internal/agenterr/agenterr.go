// Package agenterr holds the sentinel errors hostagent's packages wrap; they
// are contract's, which maps each to an exit code (contract.ExitCodeOf,
// docs/architecture.md#exit-codes). Packages wrap them with context; only main
// decides codes. It sits outside hostagent/ because internal/fsfreeze, shared
// with the test tree, reports a busy mount with it.
package agenterr

import (
	"fmt"

	"github.com/quiesce/quiesce/contract"
)

var (
	// ErrUsage: bad usage or input; nothing was changed (exit 2).
	ErrUsage = contract.ErrUsage
	// ErrBusy: another run holds one of the mounts (exit 3).
	ErrBusy = contract.ErrBusy
	// ErrLate: the thaw came after the deadline; the fail-safe had already thawed (exit 4).
	ErrLate = contract.ErrLate
	// ErrLockWait: the MySQL lock was not acquired within --lock-wait, or a long
	// running query made taking it unsafe (exit 5).
	ErrLockWait = contract.ErrLockWait
	// ErrVerifyFailed: verify or clone ran and the result is bad (exit 6).
	ErrVerifyFailed = contract.ErrVerifyFailed
)

// Usagef returns an ErrUsage-wrapping error with a one-line message naming the bad value.
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}
