package verify

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/targets"
	"github.com/quiesce/quiesce/lambda/internal/volumeset"
)

// targets returns the instance IDs to verify: the listed ones and those
// carrying every target tag (in any state but terminated: a stopped
// instance's snapshots still deserve a check), sorted.
func (r *Runner) targets(ctx context.Context, cfg *Config) ([]string, error) {
	ids := map[string]bool{}
	for _, id := range cfg.InstanceIDs {
		ids[id] = true
	}
	if len(cfg.TargetTags) > 0 {
		fs := append(targets.TagFilters(cfg.TargetTags), ec2types.Filter{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}})
		add := func(in ec2types.Instance) { ids[aws.ToString(in.InstanceId)] = true }
		if err := targets.Describe(ctx, r.EC2, fs, add); err != nil {
			return nil, fmt.Errorf("find target instances: %w", err)
		}
	}
	return slices.Sorted(maps.Keys(ids)), nil
}

// instanceSnapshots lists the stack's application-consistent snapshots of
// one instance (of one run, when runID is set).
func (r *Runner) instanceSnapshots(ctx context.Context, cfg *Config, instanceID, runID string) ([]ec2types.Snapshot, error) {
	fs := []ec2types.Filter{volumeset.TagFilter(contract.TagStack, cfg.Stack), volumeset.TagFilter(contract.TagInstance, instanceID), volumeset.TagFilter(contract.TagConsistency, contract.ConsistencyApplication)}
	if runID != "" {
		fs = append(fs, volumeset.TagFilter(contract.TagRunID, runID))
	}
	all, err := volumeset.ListSnapshots(ctx, r.EC2, fs)
	if err != nil {
		return nil, fmt.Errorf("list snapshots of %s: %w", instanceID, err)
	}
	return all, nil
}

// groupSets groups one instance's snapshots into sets by run (see
// volumeset.Group for which snapshots count), keyed by run ID.
func groupSets(stack, instanceID string, snaps []ec2types.Snapshot) map[string]*volumeset.Set {
	sets := map[string]*volumeset.Set{}
	for _, set := range volumeset.Group(stack, snaps) {
		if set.InstanceID == instanceID {
			sets[set.RunID] = set
		}
	}
	return sets
}

// missingDataDir says why the set cannot hold the source's datadir ("" when
// it may), from the quiesce:restore tag: the datadir was on no frozen mount,
// or no snapshot of the set is of the mount that held it. Restoring such a
// set would only end in hostagent finding no datadir.
func missingDataDir(s *volumeset.Set) string {
	if len(s.Snapshots) == 0 {
		return ""
	}
	rt, err := contract.ParseRestoreTag(tagMap(s.Snapshots[0].Tags)[contract.TagRestore])
	if err != nil {
		return ""
	}
	if slices.Contains(rt.Unmapped, contract.RestoreKeyDataDir) {
		return "the datadir was on no frozen mount when set " + s.RunID + " was taken (" + contract.TagRestore + " unmapped=datadir): no snapshot holds it"
	}
	if rt.DataDirMount == "" {
		return ""
	}
	for _, sn := range s.Snapshots {
		if slices.Contains(strings.Split(tagMap(sn.Tags)[contract.TagMounts], ","), rt.DataDirMount) {
			return ""
		}
	}
	return "no snapshot of set " + s.RunID + " is of " + rt.DataDirMount + ", the mount that held the datadir (" + contract.TagRestore + ")"
}

func verifiedAt(s *volumeset.Set) (time.Time, bool) {
	for _, sn := range s.Snapshots {
		if at, err := time.Parse(timeFormat, tagMap(sn.Tags)[contract.TagVerifiedAt]); err == nil {
			return at, true
		}
	}
	return time.Time{}, false
}

// runSet returns the set of one run of an instance (nil when it has none).
func (r *Runner) runSet(ctx context.Context, cfg *Config, instanceID, runID string) (*volumeset.Set, error) {
	snaps, err := r.instanceSnapshots(ctx, cfg, instanceID, runID)
	if err != nil {
		return nil, err
	}
	return groupSets(cfg.Stack, instanceID, snaps)[runID], nil
}

// dueSet picks the set to verify on an instance now, or says why none is:
// the explicit run's set, else the newest usable set not yet verified —
// unless a set of the instance was verified less than Config.Every ago.
func (r *Runner) dueSet(ctx context.Context, cfg *Config, instanceID string) (*volumeset.Set, string, error) {
	if cfg.RunID != "" {
		set, err := r.runSet(ctx, cfg, instanceID, cfg.RunID)
		if err != nil || set == nil {
			return nil, "no application-consistent snapshots of run " + cfg.RunID, err
		}
		if why := set.Unusable(); why != "" {
			return nil, why, nil
		}
		return set, "", nil
	}
	snaps, err := r.instanceSnapshots(ctx, cfg, instanceID, "")
	if err != nil {
		return nil, "", err
	}
	var best *volumeset.Set
	var last time.Time
	for _, set := range groupSets(cfg.Stack, instanceID, snaps) {
		if at, ok := verifiedAt(set); ok {
			if at.After(last) {
				last = at
			}
			continue
		}
		if set.Unusable() == "" && (best == nil || set.Started().After(best.Started())) {
			best = set
		}
	}
	if cfg.Every > 0 && !last.IsZero() && r.Clock.Now().Sub(last) < cfg.Every {
		return nil, fmt.Sprintf("verified at %s; next due %s later", last.Format(timeFormat), event.HumanDuration(cfg.Every)), nil
	}
	if best == nil {
		return nil, "no complete application-consistent set that is not verified yet", nil
	}
	return best, "", nil
}
