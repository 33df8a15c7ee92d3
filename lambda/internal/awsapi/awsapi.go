// Package awsapi holds the narrow consumer-side interfaces the Lambda uses
// over the AWS SDK clients (with the SDK's exact method signatures, so
// *ec2.Client and *ssm.Client satisfy them and tests inject fakes) and the
// one place where API errors are classified.
package awsapi

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// SSM is the part of Systems Manager the Lambda calls.
type SSM interface {
	SendCommand(ctx context.Context, params *ssm.SendCommandInput, optFns ...func(*ssm.Options)) (*ssm.SendCommandOutput, error)
	GetCommandInvocation(ctx context.Context, params *ssm.GetCommandInvocationInput, optFns ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error)
	DescribeInstanceInformation(ctx context.Context, params *ssm.DescribeInstanceInformationInput, optFns ...func(*ssm.Options)) (*ssm.DescribeInstanceInformationOutput, error)
}

// EC2Lookup is the part of EC2 every action calls: it finds instances and
// snapshots and tags what it made.
type EC2Lookup interface {
	DescribeInstances(ctx context.Context, params *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeSnapshots(ctx context.Context, params *ec2.DescribeSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	CreateTags(ctx context.Context, params *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// EC2 is the part of EC2 the snapshot run calls: the lookups, then it takes
// snapshots and retention deletes old ones.
type EC2 interface {
	EC2Lookup
	CreateSnapshot(ctx context.Context, params *ec2.CreateSnapshotInput, optFns ...func(*ec2.Options)) (*ec2.CreateSnapshotOutput, error)
	CreateSnapshots(ctx context.Context, params *ec2.CreateSnapshotsInput, optFns ...func(*ec2.Options)) (*ec2.CreateSnapshotsOutput, error)
	DeleteSnapshot(ctx context.Context, params *ec2.DeleteSnapshotInput, optFns ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
}

// VolumeLister lists EBS volumes (retention asks it which snapshots a
// verification is restoring right now).
type VolumeLister interface {
	DescribeVolumes(ctx context.Context, params *ec2.DescribeVolumesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
}

// VerifyEC2 is the part of EC2 the verify action calls: it finds snapshot
// sets and the verifier, restores the sets onto temporary volumes, attaches,
// detaches and deletes them, and tags the outcome.
type VerifyEC2 interface {
	EC2Lookup
	VolumeLister
	CreateVolume(ctx context.Context, params *ec2.CreateVolumeInput, optFns ...func(*ec2.Options)) (*ec2.CreateVolumeOutput, error)
	AttachVolume(ctx context.Context, params *ec2.AttachVolumeInput, optFns ...func(*ec2.Options)) (*ec2.AttachVolumeOutput, error)
	DetachVolume(ctx context.Context, params *ec2.DetachVolumeInput, optFns ...func(*ec2.Options)) (*ec2.DetachVolumeOutput, error)
	DeleteVolume(ctx context.Context, params *ec2.DeleteVolumeInput, optFns ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error)
}

var (
	_ SSM       = (*ssm.Client)(nil)
	_ EC2       = (*ec2.Client)(nil)
	_ VerifyEC2 = (*ec2.Client)(nil)
)

// NoSDKRetry makes one EC2 call a single attempt; used for the snapshot calls
// inside the freeze window, whose retries the orchestrator bounds by the
// freeze deadline itself.
func NoSDKRetry(o *ec2.Options) { o.RetryMaxAttempts = 1 }

// NoSSMRetry makes one SSM call a single attempt: SendCommand must never
// be re-sent by the SDK after a 5xx (a second freeze), and polling has its
// own adaptive schedule that an SDK backoff would only lengthen.
func NoSSMRetry(o *ssm.Options) { o.RetryMaxAttempts = 1 }
