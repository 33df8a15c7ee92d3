package contract

import (
	"errors"
	"fmt"
)

// ExitCode is hostagent's exit status, which the Lambda reads back from the
// SSM invocation's ResponseCode (docs/architecture.md#exit-codes). Both sides
// translate through this file only: hostagent turns an error into a code with
// ExitCodeOf, the Lambda (and the holder pipe inside hostagent) turns a code
// back into an error with ExitError.
type ExitCode int

// Exit codes of hostagent; README's Troubleshooting table says what to do
// about each.
const (
	ExitOK       ExitCode = 0 // success
	ExitFailed   ExitCode = 1 // failed; nothing is left frozen or locked
	ExitUsage    ExitCode = 2 // bad usage or input; nothing was changed
	ExitBusy     ExitCode = 3 // another run holds one of the mounts
	ExitLate     ExitCode = 4 // thaw came after the deadline; the fail-safe had already thawed
	ExitLockWait ExitCode = 5 // MySQL lock not acquired within --lock-wait (or a long query refused it)
	// ExitVerifyFailed: verify or clone ran and the result is bad (the snapshot
	// does not restore, or replication will not start); the report says why.
	ExitVerifyFailed ExitCode = 6
)

// The sentinel errors behind the exit codes. Packages wrap them with context
// (fmt.Errorf("...: %w", ErrBusy)); only the outermost caller decides the
// code, with ExitCodeOf. Their texts are part of hostagent's error messages.
var (
	ErrFailed       = errors.New("failed")
	ErrUsage        = errors.New("bad usage")
	ErrBusy         = errors.New("busy")
	ErrLate         = errors.New("thaw after deadline")
	ErrLockWait     = errors.New("mysql lock not acquired")
	ErrVerifyFailed = errors.New("verification failed")
)

// exitCodes is the one table of codes: the sentinel each stands for and
// what it means to someone reading a failed invocation. ExitCodeOf checks
// the sentinels in this order, so an error wrapping two of them (a busy
// mount found while parsing flags, say) gets the first.
var exitCodes = []exitCodeInfo{
	{ExitUsage, ErrUsage, "hostagent rejected the parameters"},
	{ExitBusy, ErrBusy, "another run holds a mount"},
	{ExitLate, ErrLate, "thaw came after the deadline; the fail-safe had already thawed"},
	{ExitLockWait, ErrLockWait, "MySQL lock not acquired within lock_wait"},
	{ExitVerifyFailed, ErrVerifyFailed, "verification failed"},
	{ExitFailed, ErrFailed, "failed, nothing held"},
}

// ExitCodeOf is the exit code for err: ExitOK for nil, the code of the first
// sentinel err wraps, else ExitFailed.
func ExitCodeOf(err error) ExitCode {
	if err == nil {
		return ExitOK
	}
	for _, c := range exitCodes {
		if errors.Is(err, c.sentinel) {
			return c.code
		}
	}
	return ExitFailed
}

// Known reports whether c is one of the codes hostagent exits with. Any other
// status (a signal, the shell's 127, SSM's -1) says nothing about what
// hostagent did.
func (c ExitCode) Known() bool {
	return c == ExitOK || c.entry() != nil
}

// Sentinel is the sentinel error c stands for: nil for ExitOK, ErrFailed for
// ExitFailed and for codes that are not Known.
func (c ExitCode) Sentinel() error {
	if e := c.entry(); e != nil {
		return e.sentinel
	}
	if c == ExitOK {
		return nil
	}
	return ErrFailed
}

// String says what the code means, e.g. "another run holds a mount (exit 3)".
func (c ExitCode) String() string {
	switch e := c.entry(); {
	case e != nil:
		return fmt.Sprintf("%s (exit %d)", e.meaning, int(c))
	case c == ExitOK:
		return "ok (exit 0)"
	}
	return fmt.Sprintf("unknown exit status %d", int(c))
}

type exitCodeInfo struct {
	code     ExitCode
	sentinel error
	meaning  string
}

func (c ExitCode) entry() *exitCodeInfo {
	for i := range exitCodes {
		if exitCodes[i].code == c {
			return &exitCodes[i]
		}
	}
	return nil
}

// ExitError is an error reported by another process through its exit code:
// hostagent's holder to the freeze command, hostagent to the Lambda. It
// unwraps to the code's sentinel, so callers branch with errors.Is exactly as
// they would on the original error.
type ExitError struct {
	Code ExitCode
	// Message is the process's own message; empty means Code.String().
	Message string
}

func (e *ExitError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return e.Code.String()
}

// Unwrap returns the code's sentinel.
func (e *ExitError) Unwrap() error { return e.Code.Sentinel() }
