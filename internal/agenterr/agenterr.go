// Package agenterr is how hostagent's packages phrase an error for the
// operator: Usagef wraps contract.ErrUsage in a one-line message naming the
// bad value, Quote cuts an echoed value to a readable length. The sentinels
// and the exit code each maps to are contract's (contract.ExitCodeOf,
// docs/architecture.md#exit-codes); packages wrap them with context and only
// main decides codes.
package agenterr

import (
	"fmt"

	"github.com/quiesce/quiesce/contract"
)

// Usagef returns an ErrUsage-wrapping error with a one-line message naming the bad value.
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", contract.ErrUsage, fmt.Sprintf(format, args...))
}
