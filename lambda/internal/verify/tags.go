package verify

import (
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/lambda/internal/tagvalue"
)

// Tag keys, all from the contract (docs/architecture.md#wire-contract).
const (
	TagStack          = contract.TagStack
	TagRunID          = contract.TagRunID
	TagInstance       = contract.TagInstance
	TagDevice         = contract.TagDevice
	TagMounts         = contract.TagMounts
	TagConsistency    = contract.TagConsistency
	TagIncomplete     = contract.TagIncomplete
	TagBinlogFile     = contract.TagBinlogFile
	TagBinlogPos      = contract.TagBinlogPos
	TagGTID           = contract.TagGTID
	TagLock           = contract.TagLock
	TagRestore        = contract.TagRestore
	TagRole           = contract.InstanceTagRole
	TagVerified       = contract.TagVerified
	TagVerifiedAt     = contract.TagVerifiedAt
	TagVerifyNote     = contract.TagVerifyNote
	TagPurpose        = contract.TagPurpose
	TagSourceSnapshot = contract.TagSourceSnapshot
	TagVerifier       = contract.TagVerifier
	TagVerifyState    = contract.TagVerifyState
	TagVerifyStarted  = contract.TagVerifyStarted
	TagVerifyCommand  = contract.TagVerifyCommand
	TagVerifySent     = contract.TagVerifySent
	TagVerifyResult   = contract.TagVerifyResult
	TagVerifyEnded    = contract.TagVerifyEnded
	TagVerifyForce    = contract.TagVerifyForce
)

// Values.
const (
	PurposeVerify = contract.PurposeVerify
	ResultOK      = contract.VerifiedOK
	ResultFailed  = contract.VerifiedFailed
	Application   = contract.ConsistencyApplication
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

func tagMap(tags []ec2types.Tag) map[string]string { return awsapi.TagMap(tags) }

func ec2Tags(m map[string]string) []ec2types.Tag { return awsapi.Tags(m, tagvalue.Truncate) }
