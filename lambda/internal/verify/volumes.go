package verify

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/lambda/internal/awsapi"
)

// refreshVolumes re-reads the job's temporary volumes (a volume deleted
// meanwhile is simply absent). The job is matched on the instance and run
// tags client-side, so a stray volume lacking them is still found.
func (r *Runner) refreshVolumes(ctx context.Context, cfg *Config, j *job) error {
	vols, err := r.describeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + TagStack), Values: []string{cfg.Stack}},
		{Name: aws.String("tag:" + TagPurpose), Values: []string{PurposeVerify}},
	}})
	if err != nil {
		return fmt.Errorf("describe the verify volumes of %s %s: %w", j.set.instanceID, j.set.runID, err)
	}
	j.vols, j.all = map[string]ec2types.Volume{}, nil
	for _, v := range vols {
		t := tagMap(v.Tags)
		if t[TagStack] == cfg.Stack && t[TagPurpose] == PurposeVerify && t[TagInstance] == j.set.instanceID && t[TagRunID] == j.set.runID {
			j.vols[t[TagSourceSnapshot]] = v
			j.all = append(j.all, v)
		}
	}
	return nil
}

// tagVolumes records progress on every temporary volume of the job.
func (r *Runner) tagVolumes(ctx context.Context, j *job, tags map[string]string) error {
	ids := j.volumeIDs()
	if len(ids) == 0 {
		return nil
	}
	if _, err := r.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids, Tags: ec2Tags(tags)}); err != nil {
		return fmt.Errorf("tag verify volumes %v: %w", ids, err)
	}
	return nil
}

// createAndAttach creates the missing volumes in the verifier's zone, waits
// until all are available and attaches them at free device names.
func (r *Runner) createAndAttach(ctx context.Context, cfg *Config, j *job) (bool, error) {
	v, err := r.describeVerifier(ctx, j.verifier)
	if err != nil {
		return false, err
	}
	if v == nil || v.state != string(ec2types.InstanceStateNameRunning) {
		j.fail("verifier "+j.verifier+" is not running", true)
		return true, nil
	}
	if err := r.refreshVolumes(ctx, cfg, j); err != nil {
		return false, err
	}
	created := false
	for _, id := range j.set.ids() {
		if _, ok := j.vols[id]; ok {
			continue
		}
		out, err := r.EC2.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(v.az), SnapshotId: aws.String(id),
			VolumeType: ec2types.VolumeTypeGp3, ClientToken: aws.String(j.clientToken(id)),
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: ec2Tags(j.volumeTags(cfg.Stack, id))}}})
		if err != nil {
			return false, fmt.Errorf("create a volume from %s in %s: %w", id, v.az, err)
		}
		r.Log.Info("verify volume created", "volume", aws.ToString(out.VolumeId), "snapshot", id, "az", v.az)
		created = true
	}
	if created {
		return false, nil // EBS takes a while; look again
	}
	for _, id := range j.set.ids() {
		switch vol := j.vols[id]; vol.State {
		case ec2types.VolumeStateError:
			j.fail(fmt.Sprintf("volume %s from %s failed to create (state error)", aws.ToString(vol.VolumeId), id), false)
			return true, nil
		case ec2types.VolumeStateCreating:
			return false, nil
		}
	}
	return r.attach(ctx, j, v)
}

// attach attaches every available volume of the job to the verifier and
// moves the job to attached once each has been attached.
func (r *Runner) attach(ctx context.Context, j *job, v *verifierInfo) (bool, error) {
	free := freeDevices(v.devices)
	for _, id := range j.set.ids() {
		vol := j.vols[id]
		if len(vol.Attachments) > 0 {
			if at := aws.ToString(vol.Attachments[0].InstanceId); at != j.verifier {
				j.fail(fmt.Sprintf("volume %s is attached to %s, not the verifier %s", aws.ToString(vol.VolumeId), at, j.verifier), true)
				return true, nil
			}
			continue
		}
		if len(free) == 0 {
			j.fail(fmt.Sprintf("verifier %s has no free device name in /dev/sdf-/dev/sdp for volume %s", j.verifier, aws.ToString(vol.VolumeId)), false)
			return true, nil
		}
		dev := free[0]
		free = free[1:]
		_, err := r.EC2.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: vol.VolumeId, InstanceId: aws.String(j.verifier), Device: aws.String(dev)})
		switch {
		case awsapi.IsDeviceInUse(err) || awsapi.IsIncorrectState(err):
			r.Log.Warn("attach refused; looking again", "volume", aws.ToString(vol.VolumeId), "device", dev, "error", err)
			return false, nil
		case err != nil:
			return false, fmt.Errorf("attach %s to %s at %s: %w", aws.ToString(vol.VolumeId), j.verifier, dev, err)
		}
		r.Log.Info("verify volume attached", "volume", aws.ToString(vol.VolumeId), "verifier", j.verifier, "device", dev)
	}
	if err := r.tagVolumes(ctx, j, map[string]string{TagVerifyState: StateAttached}); err != nil {
		return false, err
	}
	j.state = StateAttached
	return true, nil
}

// attachedAll reports whether every volume of the set is attached to the
// verifier (missing=true: one is gone or detached, so start over).
func (j *job) attachedAll() (ready, missing bool) {
	for _, id := range j.set.ids() {
		vol, ok := j.vols[id]
		if !ok || len(vol.Attachments) == 0 || aws.ToString(vol.Attachments[0].InstanceId) != j.verifier {
			return false, true
		}
		if vol.Attachments[0].State != ec2types.VolumeAttachmentStateAttached {
			return false, false
		}
	}
	return true, false
}

// cleanup detaches and deletes the job's volumes; done when none is left.
// The outcome goes on the source snapshots first (again, when a previous
// invocation recorded it and stopped), so deleting never loses it.
func (r *Runner) cleanup(ctx context.Context, cfg *Config, j *job) (bool, error) {
	if !j.snapTagged {
		if err := r.tagSnapshots(ctx, j); err != nil {
			return false, err
		}
	}
	if !j.force && r.Clock.Now().Sub(j.started) > cfg.MaxDuration {
		j.force = true // a detach that hangs past VerifyMaxHours is forced
	}
	if err := r.refreshVolumes(ctx, cfg, j); err != nil {
		return false, err
	}
	left := 0
	for _, vol := range j.all {
		gone, err := r.release(ctx, j, vol)
		if err != nil {
			return false, err
		}
		if !gone {
			left++
		}
	}
	if left == 0 {
		j.state = stateDone
		return true, nil
	}
	return false, nil
}

// release takes one volume a step towards deletion; gone=true once deleted.
func (r *Runner) release(ctx context.Context, j *job, vol ec2types.Volume) (gone bool, err error) {
	id := aws.ToString(vol.VolumeId)
	if len(vol.Attachments) > 0 {
		if vol.Attachments[0].State == ec2types.VolumeAttachmentStateDetaching && !j.force {
			return false, nil
		}
		_, err := r.EC2.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: vol.VolumeId, Force: aws.Bool(j.force)})
		switch {
		case err == nil:
			r.Log.Info("verify volume detaching", "volume", id, "force", j.force)
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
	_, err = r.EC2.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: vol.VolumeId})
	switch {
	case err == nil || awsapi.IsVolumeNotFound(err):
		r.Log.Info("verify volume deleted", "volume", id)
		return true, nil
	case awsapi.IsVolumeInUse(err) || awsapi.IsIncorrectState(err):
		return false, nil
	}
	return false, fmt.Errorf("delete %s: %w", id, err)
}
