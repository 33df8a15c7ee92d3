package verify

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/lambda/internal/tagvalue"
	"github.com/quiesce/quiesce/lambda/internal/volumeset"
)

// refreshVolumes re-reads the job's temporary volumes (a volume deleted
// meanwhile is simply absent). The job is matched on the instance and run
// tags client-side, so a stray volume lacking them is still found.
func (r *Runner) refreshVolumes(ctx context.Context, cfg *Config, j *job) error {
	vols, err := r.stackVolumes(ctx, cfg)
	if err != nil {
		return fmt.Errorf("describe the verify volumes of %s %s: %w", j.set.InstanceID, j.set.RunID, err)
	}
	j.vols, j.all = map[string]ec2types.Volume{}, nil
	for _, v := range vols {
		t := tagMap(v.Tags)
		if t[contract.TagStack] == cfg.Stack && t[contract.TagPurpose] == contract.PurposeVerify && t[contract.TagInstance] == j.set.InstanceID && t[contract.TagRunID] == j.set.RunID {
			j.vols[t[contract.TagSourceSnapshot]] = v
			j.all = append(j.all, v)
		}
	}
	return nil
}

// stackVolumes lists the stack's verify volumes (every job's).
func (r *Runner) stackVolumes(ctx context.Context, cfg *Config) ([]ec2types.Volume, error) {
	return r.volumes().List(ctx, []ec2types.Filter{volumeset.TagFilter(contract.TagStack, cfg.Stack), volumeset.TagFilter(contract.TagPurpose, contract.PurposeVerify)})
}

// volumes does the volume steps as the verify action: its log and error
// wording and its rule for tag values over EC2's limit.
func (r *Runner) volumes() *volumeset.Volumes {
	return &volumeset.Volumes{EC2: r.EC2, Log: r.Log, Kind: "verify", Fit: tagvalue.Truncate}
}

// tagVolumes records progress on every temporary volume of the job.
func (r *Runner) tagVolumes(ctx context.Context, j *job, tags map[string]string) error {
	return r.volumes().Tag(ctx, j.volumeIDs(), tags)
}

// createAndAttach creates the missing volumes in the verifier's zone, waits
// until all are available and attaches them at free device names.
func (r *Runner) createAndAttach(ctx context.Context, cfg *Config, j *job) (bool, error) {
	if why := missingDataDir(j.set); why != "" {
		j.fail(why, false)
		return true, nil
	}
	v, err := r.describeVerifier(ctx, j.verifier)
	if err != nil {
		return false, err
	}
	if v == nil || v.State != string(ec2types.InstanceStateNameRunning) {
		j.fail("verifier "+j.verifier+" is not running", true)
		return true, nil
	}
	if err := r.refreshVolumes(ctx, cfg, j); err != nil {
		return false, err
	}
	created := false
	for _, id := range j.set.IDs() {
		if _, ok := j.vols[id]; ok {
			continue
		}
		if err := r.volumes().Create(ctx, v.AZ, id, j.clientToken(id), j.volumeTags(cfg.Stack, id)); err != nil {
			return false, err
		}
		created = true
	}
	if created {
		return false, nil // EBS takes a while; look again
	}
	for _, id := range j.set.IDs() {
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
func (r *Runner) attach(ctx context.Context, j *job, v *volumeset.Instance) (bool, error) {
	free := freeDevices(slices.Collect(maps.Keys(v.Devices)))
	for _, id := range j.set.IDs() {
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
		err := r.volumes().Attach(ctx, aws.ToString(vol.VolumeId), j.verifier, dev)
		switch {
		case awsapi.IsDeviceInUse(err) || awsapi.IsIncorrectState(err):
			r.Log.Warn("attach refused; looking again", "volume", aws.ToString(vol.VolumeId), "device", dev, "error", err)
			return false, nil
		case err != nil:
			return false, err
		}
	}
	if err := r.tagVolumes(ctx, j, map[string]string{contract.TagVerifyState: StateAttached}); err != nil {
		return false, err
	}
	j.state = StateAttached
	return true, nil
}

// attachedAll reports whether every volume of the set is attached to the
// verifier (missing=true: one is gone or detached, so start over).
func (j *job) attachedAll() (ready, missing bool) {
	for _, id := range j.set.IDs() {
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
		gone, err := r.volumes().Release(ctx, vol, aws.Bool(j.force))
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
