package verify

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
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
		fs := []ec2types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped"}}}
		for _, k := range sortedKeys(cfg.TargetTags) {
			if v := cfg.TargetTags[k]; v != "" {
				fs = append(fs, ec2types.Filter{Name: aws.String("tag:" + k), Values: []string{v}})
			} else {
				fs = append(fs, ec2types.Filter{Name: aws.String("tag-key"), Values: []string{k}})
			}
		}
		in := &ec2.DescribeInstancesInput{Filters: fs, MaxResults: aws.Int32(1000)}
		for {
			out, err := r.EC2.DescribeInstances(ctx, in)
			if err != nil {
				return nil, fmt.Errorf("find target instances: %w", err)
			}
			for _, res := range out.Reservations {
				for _, inst := range res.Instances {
					ids[aws.ToString(inst.InstanceId)] = true
				}
			}
			if aws.ToString(out.NextToken) == "" {
				break
			}
			in.NextToken = out.NextToken
		}
	}
	return sortedKeys(ids), nil
}

// instanceSnapshots lists the stack's application-consistent snapshots of
// one instance (of one run, when runID is set).
func (r *Runner) instanceSnapshots(ctx context.Context, cfg *Config, instanceID, runID string) ([]ec2types.Snapshot, error) {
	fs := []ec2types.Filter{
		{Name: aws.String("tag:" + TagStack), Values: []string{cfg.Stack}},
		{Name: aws.String("tag:" + TagInstance), Values: []string{instanceID}},
		{Name: aws.String("tag:" + TagConsistency), Values: []string{Application}},
	}
	if runID != "" {
		fs = append(fs, ec2types.Filter{Name: aws.String("tag:" + TagRunID), Values: []string{runID}})
	}
	in := &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: fs, MaxResults: aws.Int32(1000)}
	var all []ec2types.Snapshot
	for {
		out, err := r.EC2.DescribeSnapshots(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list snapshots of %s: %w", instanceID, err)
		}
		all = append(all, out.Snapshots...)
		if aws.ToString(out.NextToken) == "" {
			return all, nil
		}
		in.NextToken = out.NextToken
	}
}

// groupSets groups snapshots into sets by run, keeping only this stack's
// application-consistent ones (the orphans of an abandoned call share the
// run ID but are tagged crash and incomplete).
func groupSets(stack, instanceID string, snaps []ec2types.Snapshot) map[string]*snapshotSet {
	sets := map[string]*snapshotSet{}
	for _, s := range snaps {
		t := tagMap(s.Tags)
		if t[TagStack] != stack || t[TagInstance] != instanceID || t[TagConsistency] != Application || t[TagRunID] == "" {
			continue
		}
		set := sets[t[TagRunID]]
		if set == nil {
			set = &snapshotSet{instanceID: instanceID, runID: t[TagRunID]}
			sets[t[TagRunID]] = set
		}
		set.snaps = append(set.snaps, s)
	}
	for _, set := range sets {
		sort.SliceStable(set.snaps, func(a, b int) bool {
			return tagMap(set.snaps[a].Tags)[TagDevice] < tagMap(set.snaps[b].Tags)[TagDevice]
		})
	}
	return sets
}

// usable says why a set cannot be verified ("" when it can): every member
// must be completed and none marked incomplete.
func (s *snapshotSet) usable() string {
	for _, sn := range s.snaps {
		if tagMap(sn.Tags)[TagIncomplete] == "true" {
			return "set " + s.runID + " is incomplete"
		}
		if sn.State != ec2types.SnapshotStateCompleted {
			return fmt.Sprintf("snapshot %s of set %s is %s", aws.ToString(sn.SnapshotId), s.runID, sn.State)
		}
	}
	return ""
}

func (s *snapshotSet) startTime() time.Time {
	var t time.Time
	for _, sn := range s.snaps {
		if st := aws.ToTime(sn.StartTime); st.After(t) {
			t = st
		}
	}
	return t
}

func (s *snapshotSet) verifiedAt() (time.Time, bool) {
	for _, sn := range s.snaps {
		if at, err := time.Parse(timeFormat, tagMap(sn.Tags)[TagVerifiedAt]); err == nil {
			return at, true
		}
	}
	return time.Time{}, false
}

// runSet returns the set of one run of an instance (nil when it has none).
func (r *Runner) runSet(ctx context.Context, cfg *Config, instanceID, runID string) (*snapshotSet, error) {
	snaps, err := r.instanceSnapshots(ctx, cfg, instanceID, runID)
	if err != nil {
		return nil, err
	}
	return groupSets(cfg.Stack, instanceID, snaps)[runID], nil
}

// dueSet picks the set to verify on an instance now, or says why none is:
// the explicit run's set, else the newest usable set not yet verified —
// unless a set of the instance was verified less than Config.Every ago.
func (r *Runner) dueSet(ctx context.Context, cfg *Config, instanceID string) (*snapshotSet, string, error) {
	if cfg.RunID != "" {
		set, err := r.runSet(ctx, cfg, instanceID, cfg.RunID)
		if err != nil || set == nil {
			return nil, "no application-consistent snapshots of run " + cfg.RunID, err
		}
		if why := set.usable(); why != "" {
			return nil, why, nil
		}
		return set, "", nil
	}
	snaps, err := r.instanceSnapshots(ctx, cfg, instanceID, "")
	if err != nil {
		return nil, "", err
	}
	var best *snapshotSet
	var last time.Time
	for _, set := range groupSets(cfg.Stack, instanceID, snaps) {
		if at, ok := set.verifiedAt(); ok {
			if at.After(last) {
				last = at
			}
			continue
		}
		if set.usable() == "" && (best == nil || set.startTime().After(best.startTime())) {
			best = set
		}
	}
	if cfg.Every > 0 && !last.IsZero() && r.Clock.Now().Sub(last) < cfg.Every {
		return nil, fmt.Sprintf("verified at %s; next due %s later", last.Format(timeFormat), human(cfg.Every)), nil
	}
	if best == nil {
		return nil, "no complete application-consistent set that is not verified yet", nil
	}
	return best, "", nil
}

func (r *Runner) describeVolumes(ctx context.Context, in *ec2.DescribeVolumesInput) ([]ec2types.Volume, error) {
	var all []ec2types.Volume
	for {
		out, err := r.EC2.DescribeVolumes(ctx, in)
		if err != nil {
			return nil, err
		}
		all = append(all, out.Volumes...)
		if aws.ToString(out.NextToken) == "" {
			return all, nil
		}
		in.NextToken = out.NextToken
	}
}
