package ssmrun

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/quiesce/quiesce/test/awsfake"
)

func TestRunning(t *testing.T) {
	for status, want := range map[ssmtypes.CommandInvocationStatus]bool{
		ssmtypes.CommandInvocationStatusPending: true, ssmtypes.CommandInvocationStatusInProgress: true, ssmtypes.CommandInvocationStatusDelayed: true,
		ssmtypes.CommandInvocationStatusSuccess: false, ssmtypes.CommandInvocationStatusFailed: false, ssmtypes.CommandInvocationStatusTimedOut: false,
		ssmtypes.CommandInvocationStatusCancelled: false, ssmtypes.CommandInvocationStatusCancelling: false,
	} {
		if got := Running(status); got != want {
			t.Errorf("Running(%s) = %v", status, got)
		}
	}
}

func TestInputCutsTheComment(t *testing.T) {
	in := Input("Doc", "i-1", map[string][]string{"runId": {"r"}}, 10*time.Minute, strings.Repeat("c", 150))
	if aws.ToString(in.DocumentName) != "Doc" || in.InstanceIds[0] != "i-1" || aws.ToInt32(in.TimeoutSeconds) != 600 || len(aws.ToString(in.Comment)) != 100 {
		t.Errorf("input %+v", in)
	}
}

// SendOnce turns the SDK's retries off and refuses an answer without an ID.
func TestSendOnce(t *testing.T) {
	f := &awsfake.SSM{OnSendCommand: func(context.Context, *ssm.SendCommandInput) (*ssm.SendCommandOutput, error) {
		return &ssm.SendCommandOutput{Command: &ssmtypes.Command{CommandId: aws.String("cmd-1")}}, nil
	}}
	if id, err := SendOnce(context.Background(), f, Input("Doc", "i-1", nil, time.Minute, "c")); id != "cmd-1" || err != nil || f.SendOptions.RetryMaxAttempts != 1 {
		t.Errorf("SendOnce = %q, %v (SDK attempts %d)", id, err, f.SendOptions.RetryMaxAttempts)
	}
	f.OnSendCommand = func(context.Context, *ssm.SendCommandInput) (*ssm.SendCommandOutput, error) {
		return &ssm.SendCommandOutput{}, nil
	}
	if _, err := SendOnce(context.Background(), f, Input("Doc", "i-1", nil, time.Minute, "c")); err == nil {
		t.Error("an answer without a command ID was taken")
	}
}

// PingStatus reads every page and leaves out what SSM does not manage.
func TestPingStatusPages(t *testing.T) {
	f := &awsfake.SSM{OnDescribeInstanceInformation: func(_ context.Context, in *ssm.DescribeInstanceInformationInput) (*ssm.DescribeInstanceInformationOutput, error) {
		if in.NextToken == nil {
			return &ssm.DescribeInstanceInformationOutput{NextToken: aws.String("p2"), InstanceInformationList: []ssmtypes.InstanceInformation{
				{InstanceId: aws.String("i-1"), PingStatus: ssmtypes.PingStatusOnline}}}, nil
		}
		return &ssm.DescribeInstanceInformationOutput{InstanceInformationList: []ssmtypes.InstanceInformation{
			{InstanceId: aws.String("i-2"), PingStatus: ssmtypes.PingStatusConnectionLost}}}, nil
	}}
	got, err := PingStatus(context.Background(), f, []string{"i-1", "i-2", "i-3"})
	if err != nil || got["i-1"] != "Online" || got["i-2"] != "ConnectionLost" || len(got) != 2 {
		t.Errorf("PingStatus = %v, %v", got, err)
	}
}

// Invocation: not known yet is no error; any other error is the caller's.
func TestInvocation(t *testing.T) {
	answer := error(&ssmtypes.InvocationDoesNotExist{Message: aws.String("not yet")})
	f := &awsfake.SSM{OnGetCommandInvocation: func(_ context.Context, in *ssm.GetCommandInvocationInput) (*ssm.GetCommandInvocationOutput, error) {
		if aws.ToString(in.CommandId) != "cmd-1" || aws.ToString(in.InstanceId) != "i-1" {
			t.Errorf("input %+v", in)
		}
		if answer != nil {
			return nil, answer
		}
		return &ssm.GetCommandInvocationOutput{Status: ssmtypes.CommandInvocationStatusSuccess}, nil
	}}
	if out, err := Invocation(context.Background(), f, "cmd-1", "i-1"); out != nil || err != nil {
		t.Errorf("not known yet: %+v, %v", out, err)
	}
	answer = &ssmtypes.InvalidCommandId{Message: aws.String("no such command")}
	if _, err := Invocation(context.Background(), f, "cmd-1", "i-1"); err == nil {
		t.Error("an unknown command was taken for one not registered yet")
	}
	answer = nil
	if out, err := Invocation(context.Background(), f, "cmd-1", "i-1"); err != nil || out.Status != ssmtypes.CommandInvocationStatusSuccess {
		t.Errorf("known: %+v, %v", out, err)
	}
}
