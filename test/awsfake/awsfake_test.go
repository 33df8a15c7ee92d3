package awsfake

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// A scripted call answers with its function; any other fails loudly; both
// are recorded in order.
func TestScriptedAndUnscriptedCalls(t *testing.T) {
	f := &EC2{OnCreateTags: func(_ context.Context, in *ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
		if in.Resources[0] != "vol-1" {
			t.Errorf("input %+v", in)
		}
		return &ec2.CreateTagsOutput{}, nil
	}}
	if _, err := f.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{"vol-1"}}); err != nil {
		t.Errorf("scripted: %v", err)
	}
	if out, err := f.DeleteVolume(context.Background(), &ec2.DeleteVolumeInput{}); out != nil || !errors.Is(err, ErrNotScripted) {
		t.Errorf("unscripted: %v, %v", out, err)
	}
	if got := strings.Join(f.Calls(), ","); got != "CreateTags,DeleteVolume" {
		t.Errorf("calls %s", got)
	}
	s := &SSM{}
	if _, err := s.SendCommand(context.Background(), &ssm.SendCommandInput{}, func(o *ssm.Options) { o.RetryMaxAttempts = 1 }); !errors.Is(err, ErrNotScripted) || s.SendOptions.RetryMaxAttempts != 1 {
		t.Errorf("SendCommand: %v, options %+v", err, s.SendOptions)
	}
}
