package clone

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/lambda/internal/tagvalue"
	"github.com/quiesce/quiesce/lambda/internal/volumeset"
)

const (
	stateCreating    = "creating"
	stateRunning     = "running"
	stateReplicating = "replicating"
	stateFailed      = "failed"
)

// cloneVolumes lists the clone's volumes of this set and target and fills
// in the members' volume ids.
func (r *Runner) cloneVolumes(ctx context.Context, cfg *Config, p *plan) ([]ec2types.Volume, error) {
	all, err := r.volumes().List(ctx, []ec2types.Filter{volumeset.TagFilter(contract.TagStack, cfg.Stack), volumeset.TagFilter(contract.TagPurpose, contract.PurposeClone),
		volumeset.TagFilter(contract.TagCloneTarget, cfg.TargetInstance), volumeset.TagFilter(contract.TagRunID, p.runID)})
	if err != nil {
		return nil, fmt.Errorf("describe the clone volumes of %s on %s: %w", p.runID, cfg.TargetInstance, err)
	}
	bySnap := map[string]ec2types.Volume{}
	for _, v := range all {
		if t := tagMap(v.Tags); t[contract.TagInstance] == p.instanceID && v.State != ec2types.VolumeStateDeleting && v.State != ec2types.VolumeStateDeleted {
			bySnap[t[contract.TagSourceSnapshot]] = v
		}
	}
	var vols []ec2types.Volume
	for i, m := range p.members {
		p.members[i].VolumeID = ""
		if v, ok := bySnap[m.SnapshotID]; ok {
			p.members[i].VolumeID = aws.ToString(v.VolumeId)
			vols = append(vols, v)
		}
	}
	return vols, nil
}

// stateOf is the clone's recorded state (the most advanced on any volume).
func stateOf(vols []ec2types.Volume) string {
	order := map[string]int{"": 0, stateCreating: 0, stateRunning: 1, stateReplicating: 2, stateFailed: 3}
	best := ""
	for _, v := range vols {
		if s := tagMap(v.Tags)[contract.TagCloneState]; order[s] > order[best] {
			best = s
		}
	}
	return best
}

// ensureVolumes creates the missing volumes in the target's zone, waits
// until they are available and attaches each at the source's device name,
// waiting until every one is attached.
func (r *Runner) ensureVolumes(ctx context.Context, cfg *Config, p *plan, t *volumeset.Instance) error {
	for _, m := range p.members {
		if used := t.Devices[volumeset.AttachPoint(m.Device)]; used != "" && used != m.VolumeID {
			return fmt.Errorf("target %s uses %s for %s already: the clone's volume of %s needs it (the source's device name)", cfg.TargetInstance, m.Device, used, m.SnapshotID)
		}
	}
	for _, m := range p.members {
		if m.VolumeID != "" {
			continue
		}
		if err := r.volumes().Create(ctx, t.AZ, m.SnapshotID, clientToken(cfg, p, m), volumeTags(cfg, p, m)); err != nil {
			return err
		}
	}
	return r.waitVolumes(ctx, cfg, p)
}

// waitVolumes attaches what is available and waits until all are attached.
func (r *Runner) waitVolumes(ctx context.Context, cfg *Config, p *plan) error {
	for {
		vols, err := r.cloneVolumes(ctx, cfg, p)
		if err != nil {
			return err
		}
		attached := 0
		for _, v := range vols {
			done, err := r.attachOne(ctx, cfg, p, v)
			if err != nil {
				return err
			}
			if done {
				attached++
			}
		}
		if attached == len(p.members) {
			return nil
		}
		if err := r.Clock.Sleep(ctx, r.Poll); err != nil {
			return fmt.Errorf("wait for the clone volumes: %w", err)
		}
	}
}

// attachOne moves one volume towards attached; done once it is.
func (r *Runner) attachOne(ctx context.Context, cfg *Config, p *plan, v ec2types.Volume) (bool, error) {
	id := aws.ToString(v.VolumeId)
	if v.State == ec2types.VolumeStateError {
		return false, fmt.Errorf("volume %s failed to create (state error)", id)
	}
	if len(v.Attachments) > 0 {
		a := v.Attachments[0]
		if at := aws.ToString(a.InstanceId); at != cfg.TargetInstance {
			return false, fmt.Errorf("volume %s is attached to %s, not the target %s", id, at, cfg.TargetInstance)
		}
		return a.State == ec2types.VolumeAttachmentStateAttached, nil
	}
	if v.State != ec2types.VolumeStateAvailable {
		return false, nil
	}
	dev := deviceOf(p, tagMap(v.Tags)[contract.TagSourceSnapshot])
	if err := r.volumes().Attach(ctx, id, cfg.TargetInstance, dev); err != nil && !awsapi.IsIncorrectState(err) {
		return false, err
	}
	return false, nil // look again: attached once EC2 says so
}

func deviceOf(p *plan, snapshotID string) string {
	for _, m := range p.members {
		if m.SnapshotID == snapshotID {
			return m.Device
		}
	}
	return ""
}

// tagVolumes records progress on every volume of the clone.
func (r *Runner) tagVolumes(ctx context.Context, p *plan, tags map[string]string) error {
	var ids []string
	for _, m := range p.members {
		if m.VolumeID != "" {
			ids = append(ids, m.VolumeID)
		}
	}
	return r.volumes().Tag(ctx, ids, tags)
}

// releaseAll detaches and deletes a failed clone's volumes, waiting
// (bounded by ctx; the next invocation goes on) until none is left.
func (r *Runner) releaseAll(ctx context.Context, p *plan, res *Result) error {
	for {
		left := 0
		for _, m := range p.members {
			if m.VolumeID == "" {
				continue
			}
			gone, err := r.volumes().ReleaseID(ctx, m.VolumeID, nil)
			if err != nil {
				return err
			}
			if !gone {
				left++
			}
		}
		if left == 0 {
			res.VolumesDeleted = true
			return nil
		}
		if err := r.Clock.Sleep(ctx, r.Poll); err != nil {
			return fmt.Errorf("wait for the failed clone's volumes to go: %w", err)
		}
	}
}

func volumeTags(cfg *Config, p *plan, m member) map[string]string {
	return map[string]string{
		contract.TagStack: cfg.Stack, contract.TagRunID: p.runID, contract.TagInstance: p.instanceID, contract.TagDevice: m.Device,
		contract.TagMounts: m.Mount, contract.TagPurpose: contract.PurposeClone, contract.TagSourceSnapshot: m.SnapshotID, contract.TagCloneTarget: cfg.TargetInstance,
		contract.TagCloneState: stateCreating, contract.TagName: "quiesce clone of " + p.instanceID + " " + m.Mount,
	}
}

// clientToken makes CreateVolume idempotent per set, target and snapshot.
func clientToken(cfg *Config, p *plan, m member) string {
	h := sha256.Sum256([]byte(cfg.Stack + "\x00" + p.runID + "\x00" + cfg.TargetInstance + "\x00" + m.SnapshotID))
	return "quiesce-clone-" + hex.EncodeToString(h[:16])
}

func tagMap(tags []ec2types.Tag) map[string]string { return awsapi.TagMap(tags) }

// volumes does the volume steps as the clone action: its log and error
// wording and its rule for tag values over EC2's limit.
func (r *Runner) volumes() *volumeset.Volumes {
	return &volumeset.Volumes{EC2: r.EC2, Log: r.Log, Kind: "clone", Fit: tagvalue.Cut}
}
