package contract

import "time"

// Bounds of the freeze timeout (hostagent freeze --timeout, the event's
// freeze_timeout, the quiesce:freeze-timeout instance tag): the hard deadline
// after which hostagent thaws whatever happens.
const (
	MinFreezeTimeout     = time.Second
	MaxFreezeTimeout     = 10 * time.Minute
	DefaultFreezeTimeout = 30 * time.Second
)

// MaxVerifyHours bounds a verification: the Lambda's VerifyMaxHours and
// hostagent verify's --timeout (SSM's longest execution timeout for a command
// step is 48 h). One constant, so the Lambda never sends a --timeout that
// hostagent refuses.
const MaxVerifyHours = 48

// RunIDPattern is the run id syntax: the SSM document's runId allowedPattern
// (besides the empty value), hostagent's --run-id and the event's run_id.
// It is also a file name in hostagent's state directory.
const RunIDPattern = `^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`

// ValidRunID reports whether id matches RunIDPattern. It checks without a
// regexp: compiling one would cost every hostagent process start (holder and
// guardian included) a fraction of a millisecond.
func ValidRunID(id string) bool {
	if len(id) == 0 || len(id) > 64 || id[0] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
