// Package awsfake holds fakes of the EC2 and SSM clients the Lambda calls
// (the SDK's method signatures, so they satisfy the Lambda's narrow
// interfaces), with a function field per call: a test scripts the calls it
// expects, and any other call fails with ErrNotScripted so a test that
// strays notices. Each fake records the calls made, in order.
package awsfake

import (
	"context"
	"errors"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// ErrNotScripted is the answer to a call the test gave no function for.
var ErrNotScripted = errors.New("awsfake: call not scripted")

// calls records the calls made, safe for concurrent callers.
type calls struct {
	mu    sync.Mutex
	names []string
}

func (c *calls) record(name string) {
	c.mu.Lock()
	c.names = append(c.names, name)
	c.mu.Unlock()
}

// Calls are the names of the calls made, in order.
func (c *calls) Calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.names...)
}

// EC2 fakes the EC2 client.
type EC2 struct {
	calls
	OnDescribeInstances func(ctx context.Context, in *ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error)
	OnCreateSnapshot    func(ctx context.Context, in *ec2.CreateSnapshotInput) (*ec2.CreateSnapshotOutput, error)
	OnCreateSnapshots   func(ctx context.Context, in *ec2.CreateSnapshotsInput) (*ec2.CreateSnapshotsOutput, error)
	OnCreateTags        func(ctx context.Context, in *ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error)
	OnDescribeSnapshots func(ctx context.Context, in *ec2.DescribeSnapshotsInput) (*ec2.DescribeSnapshotsOutput, error)
	OnDeleteSnapshot    func(ctx context.Context, in *ec2.DeleteSnapshotInput) (*ec2.DeleteSnapshotOutput, error)
	OnDescribeVolumes   func(ctx context.Context, in *ec2.DescribeVolumesInput) (*ec2.DescribeVolumesOutput, error)
	OnCreateVolume      func(ctx context.Context, in *ec2.CreateVolumeInput) (*ec2.CreateVolumeOutput, error)
	OnAttachVolume      func(ctx context.Context, in *ec2.AttachVolumeInput) (*ec2.AttachVolumeOutput, error)
	OnDetachVolume      func(ctx context.Context, in *ec2.DetachVolumeInput) (*ec2.DetachVolumeOutput, error)
	OnDeleteVolume      func(ctx context.Context, in *ec2.DeleteVolumeInput) (*ec2.DeleteVolumeOutput, error)
}

// SSM fakes the SSM client. SendOptions are the options the last
// SendCommand was given, applied to zero options.
type SSM struct {
	calls
	OnSendCommand                 func(ctx context.Context, in *ssm.SendCommandInput) (*ssm.SendCommandOutput, error)
	OnGetCommandInvocation        func(ctx context.Context, in *ssm.GetCommandInvocationInput) (*ssm.GetCommandInvocationOutput, error)
	OnDescribeInstanceInformation func(ctx context.Context, in *ssm.DescribeInstanceInformationInput) (*ssm.DescribeInstanceInformationOutput, error)
	SendOptions                   ssm.Options
}

// call records the call and answers it with fn, or ErrNotScripted.
func call[In, Out any](c *calls, name string, fn func(context.Context, In) (*Out, error), ctx context.Context, in In) (*Out, error) {
	c.record(name)
	if fn == nil {
		return nil, ErrNotScripted
	}
	return fn(ctx, in)
}

func (f *EC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	return call(&f.calls, "DescribeInstances", f.OnDescribeInstances, ctx, in)
}

func (f *EC2) CreateSnapshot(ctx context.Context, in *ec2.CreateSnapshotInput, _ ...func(*ec2.Options)) (*ec2.CreateSnapshotOutput, error) {
	return call(&f.calls, "CreateSnapshot", f.OnCreateSnapshot, ctx, in)
}

func (f *EC2) CreateSnapshots(ctx context.Context, in *ec2.CreateSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.CreateSnapshotsOutput, error) {
	return call(&f.calls, "CreateSnapshots", f.OnCreateSnapshots, ctx, in)
}

func (f *EC2) CreateTags(ctx context.Context, in *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	return call(&f.calls, "CreateTags", f.OnCreateTags, ctx, in)
}

func (f *EC2) DescribeSnapshots(ctx context.Context, in *ec2.DescribeSnapshotsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	return call(&f.calls, "DescribeSnapshots", f.OnDescribeSnapshots, ctx, in)
}

func (f *EC2) DeleteSnapshot(ctx context.Context, in *ec2.DeleteSnapshotInput, _ ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	return call(&f.calls, "DeleteSnapshot", f.OnDeleteSnapshot, ctx, in)
}

func (f *EC2) DescribeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput, _ ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	return call(&f.calls, "DescribeVolumes", f.OnDescribeVolumes, ctx, in)
}

func (f *EC2) CreateVolume(ctx context.Context, in *ec2.CreateVolumeInput, _ ...func(*ec2.Options)) (*ec2.CreateVolumeOutput, error) {
	return call(&f.calls, "CreateVolume", f.OnCreateVolume, ctx, in)
}

func (f *EC2) AttachVolume(ctx context.Context, in *ec2.AttachVolumeInput, _ ...func(*ec2.Options)) (*ec2.AttachVolumeOutput, error) {
	return call(&f.calls, "AttachVolume", f.OnAttachVolume, ctx, in)
}

func (f *EC2) DetachVolume(ctx context.Context, in *ec2.DetachVolumeInput, _ ...func(*ec2.Options)) (*ec2.DetachVolumeOutput, error) {
	return call(&f.calls, "DetachVolume", f.OnDetachVolume, ctx, in)
}

func (f *EC2) DeleteVolume(ctx context.Context, in *ec2.DeleteVolumeInput, _ ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error) {
	return call(&f.calls, "DeleteVolume", f.OnDeleteVolume, ctx, in)
}

// SendCommand also keeps the options it was given.
func (f *SSM) SendCommand(ctx context.Context, in *ssm.SendCommandInput, opts ...func(*ssm.Options)) (*ssm.SendCommandOutput, error) {
	var o ssm.Options
	for _, fn := range opts {
		fn(&o)
	}
	f.mu.Lock()
	f.SendOptions = o
	f.mu.Unlock()
	return call(&f.calls, "SendCommand", f.OnSendCommand, ctx, in)
}

func (f *SSM) GetCommandInvocation(ctx context.Context, in *ssm.GetCommandInvocationInput, _ ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error) {
	return call(&f.calls, "GetCommandInvocation", f.OnGetCommandInvocation, ctx, in)
}

func (f *SSM) DescribeInstanceInformation(ctx context.Context, in *ssm.DescribeInstanceInformationInput, _ ...func(*ssm.Options)) (*ssm.DescribeInstanceInformationOutput, error) {
	return call(&f.calls, "DescribeInstanceInformation", f.OnDescribeInstanceInformation, ctx, in)
}
