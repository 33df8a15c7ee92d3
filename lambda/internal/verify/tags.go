package verify

import (
	"sort"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Tag keys the snapshot run writes and this action reads (README "Honest
// tags"; a test keeps them equal to the orchestrator's).
const (
	TagStack       = "quiesce:stack"
	TagRunID       = "quiesce:run-id"
	TagInstance    = "quiesce:instance"
	TagDevice      = "quiesce:device"
	TagConsistency = "quiesce:consistency"
	TagIncomplete  = "quiesce:incomplete"
	TagBinlogFile  = "quiesce:binlog-file"
	TagBinlogPos   = "quiesce:binlog-pos"
	TagGTID        = "quiesce:gtid"
)

// Tags of the verify action.
const (
	// TagRole=<VerifierTag> marks a verifier instance.
	TagRole = "quiesce:role"
	// On the source snapshots, once a verification ended.
	TagVerified   = "quiesce:verified" // ok | failed
	TagVerifiedAt = "quiesce:verified-at"
	TagVerifyNote = "quiesce:verify-note" // the first reason of a failure
	// On the temporary volumes (with quiesce:stack, quiesce:run-id and
	// quiesce:instance of the source set): the progress of a verification,
	// so that the next invocation resumes it.
	TagPurpose        = "quiesce:purpose" // always PurposeVerify
	TagSourceSnapshot = "quiesce:source-snapshot"
	TagVerifier       = "quiesce:verifier"
	TagVerifyState    = "quiesce:verify-state" // creating | attached | running | cleanup
	TagVerifyStarted  = "quiesce:verify-started"
	TagVerifyCommand  = "quiesce:verify-command"
	TagVerifySent     = "quiesce:verify-sent"
	TagVerifyResult   = "quiesce:verify-result" // ok | failed, from the cleanup state on
	TagVerifyEnded    = "quiesce:verify-ended"
	TagVerifyForce    = "quiesce:verify-force" // "true": detach with Force
)

// Values.
const (
	PurposeVerify = "verify"
	ResultOK      = "ok"
	ResultFailed  = "failed"
	Application   = "application"
)

// Progress states of a verification, in order.
const (
	StateCreating = "creating" // volumes being created and attached
	StateAttached = "attached" // every volume attached: send the command
	StateRunning  = "running"  // hostagent verify is running
	StateCleanup  = "cleanup"  // outcome recorded: detach and delete
)

var stateOrder = map[string]int{StateCreating: 0, StateAttached: 1, StateRunning: 2, StateCleanup: 3}

const timeFormat = "2006-01-02T15:04:05Z"

func tagMap(tags []ec2types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func ec2Tags(m map[string]string) []ec2types.Tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]ec2types.Tag, 0, len(keys))
	for _, k := range keys {
		out = append(out, ec2types.Tag{Key: aws.String(k), Value: aws.String(truncate(m[k]))})
	}
	return out
}

// truncate fits v into EC2's 256-character tag value, marking the cut.
func truncate(v string) string {
	if utf8.RuneCountInString(v) <= 256 {
		return v
	}
	const mark = "...(truncated)"
	return string([]rune(v)[:256-len(mark)]) + mark
}
