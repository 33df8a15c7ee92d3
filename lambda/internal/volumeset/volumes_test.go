package volumeset

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/test/awsfake"
)

func apiErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: "scripted"} }

// Release walks a volume towards deletion one call at a time.
func TestRelease(t *testing.T) {
	attached := func(state ec2types.VolumeAttachmentState) ec2types.Volume {
		return ec2types.Volume{VolumeId: aws.String("vol-1"), State: ec2types.VolumeStateInUse, Attachments: []ec2types.VolumeAttachment{{State: state}}}
	}
	available := ec2types.Volume{VolumeId: aws.String("vol-1"), State: ec2types.VolumeStateAvailable}
	tests := []struct {
		name      string
		vol       ec2types.Volume
		force     *bool
		detachErr error
		deleteErr error
		gone      bool
		err       string
		calls     string
		force2    *bool // the Force the detach sent
	}{
		{name: "attached: detach", vol: attached(ec2types.VolumeAttachmentStateAttached), calls: "DetachVolume"},
		{name: "attached: forced detach", vol: attached(ec2types.VolumeAttachmentStateAttached), force: aws.Bool(true), calls: "DetachVolume", force2: aws.Bool(true)},
		{name: "detaching: wait", vol: attached(ec2types.VolumeAttachmentStateDetaching), force: aws.Bool(false)},
		{name: "detaching: force it", vol: attached(ec2types.VolumeAttachmentStateDetaching), force: aws.Bool(true), calls: "DetachVolume", force2: aws.Bool(true)},
		{name: "detach: gone meanwhile", vol: attached(ec2types.VolumeAttachmentStateAttached), detachErr: apiErr("InvalidVolume.NotFound"), gone: true, calls: "DetachVolume"},
		{name: "detach: not now", vol: attached(ec2types.VolumeAttachmentStateAttached), detachErr: apiErr("IncorrectState"), calls: "DetachVolume"},
		{name: "detach refused", vol: attached(ec2types.VolumeAttachmentStateAttached), detachErr: apiErr("UnauthorizedOperation"), err: "detach vol-1", calls: "DetachVolume"},
		{name: "creating: wait", vol: ec2types.Volume{VolumeId: aws.String("vol-1"), State: ec2types.VolumeStateCreating}},
		{name: "available: delete", vol: available, gone: true, calls: "DeleteVolume"},
		{name: "delete: already gone", vol: available, deleteErr: apiErr("InvalidVolume.NotFound"), gone: true, calls: "DeleteVolume"},
		{name: "delete: still in use", vol: available, deleteErr: apiErr("VolumeInUse"), calls: "DeleteVolume"},
		{name: "delete refused", vol: available, deleteErr: apiErr("UnauthorizedOperation"), err: "delete vol-1", calls: "DeleteVolume"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sent *bool
			f := &awsfake.EC2{
				OnDetachVolume: func(_ context.Context, in *ec2.DetachVolumeInput) (*ec2.DetachVolumeOutput, error) {
					sent = in.Force
					return &ec2.DetachVolumeOutput{}, tt.detachErr
				},
				OnDeleteVolume: func(context.Context, *ec2.DeleteVolumeInput) (*ec2.DeleteVolumeOutput, error) {
					return &ec2.DeleteVolumeOutput{}, tt.deleteErr
				},
			}
			v := &Volumes{EC2: f, Log: slog.New(slog.DiscardHandler), Kind: "test"}
			gone, err := v.Release(context.Background(), tt.vol, tt.force)
			if gone != tt.gone || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("Release = %v, %v; want %v, %q", gone, err, tt.gone, tt.err)
			}
			if got := strings.Join(f.Calls(), ","); got != tt.calls || aws.ToBool(sent) != aws.ToBool(tt.force2) || (sent == nil) != (tt.force2 == nil) {
				t.Errorf("calls %q (Force %v), want %q (Force %v)", got, sent, tt.calls, tt.force2)
			}
		})
	}
}

// ReleaseID looks first: a volume EC2 no longer knows is gone.
func TestReleaseIDGone(t *testing.T) {
	for _, answer := range []error{apiErr("InvalidVolume.NotFound"), nil} {
		f := &awsfake.EC2{OnDescribeVolumes: func(context.Context, *ec2.DescribeVolumesInput) (*ec2.DescribeVolumesOutput, error) {
			return &ec2.DescribeVolumesOutput{}, answer
		}}
		v := &Volumes{EC2: f, Log: slog.New(slog.DiscardHandler), Kind: "test"}
		if gone, err := v.ReleaseID(context.Background(), "vol-1", nil); !gone || err != nil {
			t.Errorf("%v: ReleaseID = %v, %v", answer, gone, err)
		}
	}
	f := &awsfake.EC2{OnDescribeVolumes: func(context.Context, *ec2.DescribeVolumesInput) (*ec2.DescribeVolumesOutput, error) {
		return nil, apiErr("UnauthorizedOperation")
	}}
	v := &Volumes{EC2: f, Log: slog.New(slog.DiscardHandler), Kind: "test"}
	if gone, err := v.ReleaseID(context.Background(), "vol-1", nil); gone || err == nil || !strings.Contains(err.Error(), "describe vol-1") {
		t.Errorf("describe failing: %v, %v", gone, err)
	}
}

// List reads every page; Tag of no volume calls nothing.
func TestListPagesAndTagNothing(t *testing.T) {
	f := &awsfake.EC2{OnDescribeVolumes: func(_ context.Context, in *ec2.DescribeVolumesInput) (*ec2.DescribeVolumesOutput, error) {
		if in.NextToken == nil {
			return &ec2.DescribeVolumesOutput{Volumes: []ec2types.Volume{{VolumeId: aws.String("vol-1")}}, NextToken: aws.String("p2")}, nil
		}
		return &ec2.DescribeVolumesOutput{Volumes: []ec2types.Volume{{VolumeId: aws.String("vol-2")}}}, nil
	}}
	v := &Volumes{EC2: f, Log: slog.New(slog.DiscardHandler), Kind: "test"}
	vols, err := v.List(context.Background(), []ec2types.Filter{TagFilter(contract.TagStack, "st")})
	if err != nil || len(vols) != 2 || len(f.Calls()) != 2 {
		t.Errorf("List = %d volumes, %v, calls %v", len(vols), err, f.Calls())
	}
	if err := v.Tag(context.Background(), nil, map[string]string{"k": "v"}); err != nil || len(f.Calls()) != 2 {
		t.Errorf("Tag of nothing: %v, calls %v", err, f.Calls())
	}
}

// An instance as the actions see it: /dev/xvdX and /dev/sdX are one
// attachment point; an instance EC2 does not know is nil, not an error.
func TestDescribeInstance(t *testing.T) {
	inst := ec2types.Instance{InstanceId: aws.String("i-1"), State: &ec2types.InstanceState{Name: ec2types.InstanceStateNameRunning},
		Placement: &ec2types.Placement{AvailabilityZone: aws.String("us-east-1b")}, Tags: awsapi.Tags(map[string]string{"quiesce:role": "verifier"}, nil),
		BlockDeviceMappings: []ec2types.InstanceBlockDeviceMapping{
			{DeviceName: aws.String("/dev/xvda"), Ebs: &ec2types.EbsInstanceBlockDevice{VolumeId: aws.String("vol-root")}},
			{DeviceName: aws.String("/dev/xvdf"), Ebs: &ec2types.EbsInstanceBlockDevice{VolumeId: aws.String("vol-data")}},
			{DeviceName: aws.String("/dev/sdb")},
		}}
	f := &awsfake.EC2{OnDescribeInstances: func(_ context.Context, in *ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
		if in.InstanceIds[0] != "i-1" {
			return nil, apiErr("InvalidInstanceID.NotFound")
		}
		return &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{{Instances: []ec2types.Instance{inst}}}}, nil
	}}
	got, err := DescribeInstance(context.Background(), f, "i-1")
	if err != nil || got.ID != "i-1" || got.State != "running" || got.AZ != "us-east-1b" || got.Tags["quiesce:role"] != "verifier" ||
		got.Devices["/dev/sda"] != "vol-root" || got.Devices["/dev/sdf"] != "vol-data" || len(got.Devices) != 3 {
		t.Errorf("DescribeInstance = %+v, %v", got, err)
	}
	if got, err := DescribeInstance(context.Background(), f, "i-gone"); got != nil || err != nil {
		t.Errorf("unknown instance: %+v, %v", got, err)
	}
}
