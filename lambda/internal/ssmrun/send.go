// Package ssmrun is what the Lambda's actions share about running hostagent
// through SSM Run Command (docs/architecture.md#wire-contract): the
// SendCommand request, sending it exactly once, SSM's view of the
// instances, and reading what hostagent printed.
package ssmrun

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/quiesce/quiesce/lambda/internal/awsapi"
)

// commentMax is SSM's limit on a command's comment.
const commentMax = 100

// Input is the SendCommand request running the document on one instance;
// timeout is the delivery timeout (TimeoutSeconds), the comment is cut to
// SSM's limit.
func Input(doc, instanceID string, params map[string][]string, timeout time.Duration, comment string) *ssm.SendCommandInput {
	return &ssm.SendCommandInput{
		DocumentName:   aws.String(doc),
		InstanceIds:    []string{instanceID},
		Parameters:     params,
		TimeoutSeconds: aws.Int32(int32(timeout.Seconds())),
		Comment:        aws.String(Truncate(comment, commentMax)),
	}
}

// ErrNoCommandID: SendCommand answered without a command ID, so there is
// nothing to poll.
var ErrNoCommandID = errors.New("SendCommand returned no command ID")

// SendOnce sends the command in a single attempt (an SDK retry after a 5xx
// could run hostagent twice) and returns the command's ID.
func SendOnce(ctx context.Context, api awsapi.SSM, in *ssm.SendCommandInput) (string, error) {
	out, err := api.SendCommand(ctx, in, awsapi.NoSSMRetry)
	if err != nil {
		return "", err
	}
	if out.Command == nil || aws.ToString(out.Command.CommandId) == "" {
		return "", ErrNoCommandID
	}
	return aws.ToString(out.Command.CommandId), nil
}

// Invocation is the command's invocation on the instance as SSM reports it
// now; nil, without an error, while SSM does not know it yet (it registers
// an invocation a moment after SendCommand returns).
func Invocation(ctx context.Context, api awsapi.SSM, commandID, instanceID string) (*ssm.GetCommandInvocationOutput, error) {
	out, err := api.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(commandID), InstanceId: aws.String(instanceID)})
	if awsapi.IsInvocationDoesNotExist(err) {
		return nil, nil
	}
	return out, err
}

// Running says whether an invocation in this status has not ended yet.
func Running(status ssmtypes.CommandInvocationStatus) bool {
	switch status {
	case ssmtypes.CommandInvocationStatusPending, ssmtypes.CommandInvocationStatusInProgress, ssmtypes.CommandInvocationStatusDelayed:
		return true
	}
	return false
}

// PingStatus is SSM's ping status of each of the instances it knows
// (Online, ConnectionLost, Inactive); an instance SSM does not manage is
// absent. The ids are asked for 50 at a time, every page of each.
func PingStatus(ctx context.Context, api awsapi.SSM, ids []string) (map[string]string, error) {
	out := map[string]string{}
	for chunk := range slices.Chunk(ids, 50) {
		in := &ssm.DescribeInstanceInformationInput{
			Filters:    []ssmtypes.InstanceInformationStringFilter{{Key: aws.String("InstanceIds"), Values: chunk}},
			MaxResults: aws.Int32(50),
		}
		for pages := ssm.NewDescribeInstanceInformationPaginator(api, in); pages.HasMorePages(); {
			o, err := pages.NextPage(ctx)
			if err != nil {
				return nil, err
			}
			for _, info := range o.InstanceInformationList {
				out[aws.ToString(info.InstanceId)] = string(info.PingStatus)
			}
		}
	}
	return out, nil
}
