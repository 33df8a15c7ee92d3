package volumeset

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/lambda/internal/awsapi"
)

// Instance is what restoring a set onto an instance needs to know of it.
type Instance struct {
	ID, State, AZ string
	Tags          map[string]string
	// Devices maps every attachment point in use (AttachPoint form) to the
	// EBS volume there ("" for a mapping that is not EBS).
	Devices map[string]string
}

// InstanceOf reads an instance as EC2 described it.
func InstanceOf(in ec2types.Instance) *Instance {
	v := &Instance{ID: aws.ToString(in.InstanceId), Tags: awsapi.TagMap(in.Tags), Devices: map[string]string{}}
	if in.State != nil {
		v.State = string(in.State.Name)
	}
	if in.Placement != nil {
		v.AZ = aws.ToString(in.Placement.AvailabilityZone)
	}
	for _, bd := range in.BlockDeviceMappings {
		vol := ""
		if bd.Ebs != nil {
			vol = aws.ToString(bd.Ebs.VolumeId)
		}
		v.Devices[AttachPoint(aws.ToString(bd.DeviceName))] = vol
	}
	return v
}

// DescribeInstance returns the instance as EC2 sees it now (nil: EC2 does
// not know it).
func DescribeInstance(ctx context.Context, api awsapi.VerifyEC2, id string) (*Instance, error) {
	out, err := api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if awsapi.Code(err) == "InvalidInstanceID.NotFound" {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for _, res := range out.Reservations {
		for _, in := range res.Instances {
			return InstanceOf(in), nil
		}
	}
	return nil, nil
}
