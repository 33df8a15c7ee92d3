package volumeset

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/lambda/internal/awsapi"
)

// TagFilter matches a resource whose tag key has the value.
func TagFilter(key, value string) ec2types.Filter {
	return ec2types.Filter{Name: aws.String("tag:" + key), Values: []string{value}}
}

// ListSnapshots returns this account's snapshots matching the filters, all
// pages of them.
func ListSnapshots(ctx context.Context, api awsapi.VerifyEC2, filters []ec2types.Filter) ([]ec2types.Snapshot, error) {
	in := &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: filters, MaxResults: aws.Int32(1000)}
	var all []ec2types.Snapshot
	for pages := ec2.NewDescribeSnapshotsPaginator(api, in); pages.HasMorePages(); {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		all = append(all, out.Snapshots...)
	}
	return all, nil
}

// Volumes carries out one action's volume steps. Every step is one look or
// one call, so an action that runs out of invocation time stops between
// two and the next invocation resumes from the volumes' tags.
type Volumes struct {
	EC2 awsapi.VerifyEC2
	Log *slog.Logger
	// Kind names the action's volumes in logs and errors ("verify", "clone").
	Kind string
	// Fit is the action's rule for a tag value over EC2's limit.
	Fit func(string) string
}

// List returns every volume matching the filters, all pages of them.
func (v *Volumes) List(ctx context.Context, filters []ec2types.Filter) ([]ec2types.Volume, error) {
	var all []ec2types.Volume
	for pages := ec2.NewDescribeVolumesPaginator(v.EC2, &ec2.DescribeVolumesInput{Filters: filters}); pages.HasMorePages(); {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		all = append(all, out.Volumes...)
	}
	return all, nil
}

// Create creates a gp3 volume from the snapshot in the zone, with its tags
// from the start (a volume is never untagged, so a later invocation always
// finds it); the client token makes a retried call create it once.
func (v *Volumes) Create(ctx context.Context, az, snapshotID, clientToken string, tags map[string]string) error {
	out, err := v.EC2.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(az), SnapshotId: aws.String(snapshotID),
		VolumeType: ec2types.VolumeTypeGp3, ClientToken: aws.String(clientToken),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: awsapi.Tags(tags, v.Fit)}}})
	if err != nil {
		return fmt.Errorf("create a volume from %s in %s: %w", snapshotID, az, err)
	}
	v.Log.Info(v.Kind+" volume created", "volume", aws.ToString(out.VolumeId), "snapshot", snapshotID, "az", az)
	return nil
}

// Attach attaches the volume to the instance at the device. The API error
// stays inside the returned one, so the caller tells a refusal worth
// looking again after (awsapi.IsIncorrectState, IsDeviceInUse) apart.
func (v *Volumes) Attach(ctx context.Context, volumeID, instanceID, device string) error {
	_, err := v.EC2.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(volumeID), InstanceId: aws.String(instanceID), Device: aws.String(device)})
	if err != nil {
		return fmt.Errorf("attach %s to %s at %s: %w", volumeID, instanceID, device, err)
	}
	v.Log.Info(v.Kind+" volume attached", "volume", volumeID, "instance", instanceID, "device", device)
	return nil
}

// Tag records progress on the volumes (none given: nothing to do).
func (v *Volumes) Tag(ctx context.Context, ids []string, tags map[string]string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := v.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids, Tags: awsapi.Tags(tags, v.Fit)}); err != nil {
		return fmt.Errorf("tag the %s volumes %v: %w", v.Kind, ids, err)
	}
	return nil
}

// Release takes one volume (as last described) a step towards deletion;
// gone once it is deleted or was already. An attached volume is detached,
// forced when force says so (nil: the request names no Force); one still
// detaching is left to finish unless forced, one still creating to become
// available; a detached one is deleted.
func (v *Volumes) Release(ctx context.Context, vol ec2types.Volume, force *bool) (gone bool, err error) {
	id := aws.ToString(vol.VolumeId)
	if len(vol.Attachments) > 0 {
		if vol.Attachments[0].State == ec2types.VolumeAttachmentStateDetaching && !aws.ToBool(force) {
			return false, nil
		}
		_, err := v.EC2.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: vol.VolumeId, Force: force})
		switch {
		case err == nil:
			v.Log.Info(v.Kind+" volume detaching", "volume", id, "force", aws.ToBool(force))
		case awsapi.IsVolumeNotFound(err):
			return true, nil
		case !awsapi.IsIncorrectState(err):
			return false, fmt.Errorf("detach %s: %w", id, err)
		}
		return false, nil
	}
	if vol.State == ec2types.VolumeStateCreating {
		return false, nil
	}
	_, err = v.EC2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: vol.VolumeId})
	switch {
	case err == nil || awsapi.IsVolumeNotFound(err):
		v.Log.Info(v.Kind+" volume deleted", "volume", id)
		return true, nil
	case awsapi.IsVolumeInUse(err) || awsapi.IsIncorrectState(err):
		return false, nil
	}
	return false, fmt.Errorf("delete %s: %w", id, err)
}

// ReleaseID is Release of a volume known by its ID only: it looks at the
// volume first.
func (v *Volumes) ReleaseID(ctx context.Context, id string, force *bool) (gone bool, err error) {
	out, err := v.EC2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
	if awsapi.IsVolumeNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("describe %s: %w", id, err)
	}
	if len(out.Volumes) == 0 {
		return true, nil
	}
	return v.Release(ctx, out.Volumes[0], force)
}

// AttachPoint is the attachment point of a device name: EC2 takes
// /dev/xvdX and /dev/sdX for one.
func AttachPoint(device string) string { return strings.Replace(device, "/dev/xvd", "/dev/sd", 1) }
