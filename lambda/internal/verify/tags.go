package verify

import (
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/lambda/internal/tagvalue"
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
