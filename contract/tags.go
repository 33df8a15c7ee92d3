package contract

// Snapshot tag keys the Lambda writes (README "Read the result" lists what
// each means). Retention, restore drills and operators read them back, and
// the IAM policy keys DeleteSnapshot on TagStack.
const (
	TagStack       = "quiesce:stack"
	TagRunID       = "quiesce:run-id"
	TagInstance    = "quiesce:instance"
	TagDevice      = "quiesce:device"
	TagMounts      = "quiesce:mounts"
	TagConsistency = "quiesce:consistency"
	TagLock        = "quiesce:lock"
	TagBinlogFile  = "quiesce:binlog-file"
	TagBinlogPos   = "quiesce:binlog-pos"
	TagGTID        = "quiesce:gtid"
	TagIncomplete  = "quiesce:incomplete"
	TagNote        = "quiesce:note"
	// Written on a set's snapshots when a verification of it ended
	// (docs/architecture.md#restore-verification).
	TagVerified   = "quiesce:verified" // VerifiedOK | VerifiedFailed
	TagVerifiedAt = "quiesce:verified-at"
	TagVerifyNote = "quiesce:verify-note" // the first reason of a failure
	// TagName is EC2's display name tag; quiesce sets it on every snapshot.
	TagName = "Name"
)

// SnapshotTagKeys lists every tag key quiesce may put on a snapshot. A key
// the Lambda writes must be listed here (the Lambda's wire tests check every
// snapshot they create), so the user tag budget below stays honest.
var SnapshotTagKeys = [...]string{
	TagStack, TagRunID, TagInstance, TagDevice, TagMounts, TagConsistency, TagLock,
	TagBinlogFile, TagBinlogPos, TagGTID, TagIncomplete, TagNote, TagName,
	TagVerified, TagVerifiedAt, TagVerifyNote,
	// A replica's source coordinates (ReplicationTagKeys) and the restore
	// settings (TagRestore), written at creation when hostagent reports them.
	TagSourceHost, TagSourcePort, TagSourceLogFile, TagSourceLogPos,
	TagSourceGTID, TagSourceGTIDTruncated, TagSourceChannels,
	TagRestore,
}

// Values of TagVerified.
const (
	VerifiedOK     = "ok"
	VerifiedFailed = "failed"
)

// Tags on the temporary volumes a verification creates (with TagStack,
// TagRunID and TagInstance of the source set): its progress, so that the
// next invocation resumes it, and what IAM keys Detach/Delete on.
const (
	TagPurpose        = "quiesce:purpose" // PurposeVerify, or PurposeClone on a clone's volumes
	TagSourceSnapshot = "quiesce:source-snapshot"
	TagVerifier       = "quiesce:verifier"
	TagVerifyState    = "quiesce:verify-state" // creating | attached | running | cleanup
	TagVerifyStarted  = "quiesce:verify-started"
	TagVerifyCommand  = "quiesce:verify-command"
	TagVerifySent     = "quiesce:verify-sent"
	TagVerifyResult   = "quiesce:verify-result" // VerifiedOK | VerifiedFailed, from cleanup on
	TagVerifyEnded    = "quiesce:verify-ended"
	TagVerifyForce    = "quiesce:verify-force" // "true": detach with Force
	PurposeVerify     = "verify"
)

// Tags on the volumes a clone creates (with TagStack, TagRunID, TagInstance,
// TagDevice and TagMounts of the source snapshot, TagPurpose PurposeClone and
// TagSourceSnapshot): its target and progress, for the next invocation.
const (
	TagCloneTarget  = "quiesce:clone-target"
	TagCloneState   = "quiesce:clone-state" // running | replicating | failed
	TagCloneCommand = "quiesce:clone-command"
	TagCloneNote    = "quiesce:clone-note"
	PurposeClone    = "clone"
)

// Tag budget: EC2 allows MaxTagsPerResource tags on a snapshot; quiesce
// reserves one per key it may write, the event's snapshot_tags get the rest.
const (
	MaxTagsPerResource = 50
	ReservedTags       = len(SnapshotTagKeys)
	MaxUserTags        = MaxTagsPerResource - ReservedTags
)

// TagPrefix starts every quiesce tag key; user tags may not use it.
const TagPrefix = "quiesce:"

// Values of TagConsistency (docs/architecture.md#consistency).
const (
	ConsistencyApplication = "application"
	ConsistencyCrash       = "crash"
)

// Instance tags the Lambda reads: the opt-in tag the IAM policy requires on
// every instance it may send commands to, and per-instance overrides of the
// event's settings.
const (
	InstanceTagEnabled       = "quiesce:enabled"
	InstanceTagMounts        = "quiesce:mounts"
	InstanceTagMySQLLock     = "quiesce:mysql-lock"
	InstanceTagFreezeTimeout = "quiesce:freeze-timeout"
	// InstanceTagRole=<VerifierTagValue> marks a verifier instance; IAM lets
	// the verify document and AttachVolume reach only those.
	InstanceTagRole = "quiesce:role"
)
