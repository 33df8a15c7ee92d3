package clone

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/volumeset"
)

// member is one snapshot of the set: where its volume goes on the target.
type member struct {
	SnapshotID string `json:"snapshot_id"`
	Device     string `json:"device"`
	Mount      string `json:"mount"`
	VolumeID   string `json:"volume_id,omitempty"`
}

// plan is what the set says: its members, the source and the coordinates.
type plan struct {
	runID, instanceID string
	members           []member
	sourceHost        string
	sourcePort        int
	coords            contract.CloneCoordinates
	// fromReplica: the set is of a replica (it names its own source).
	fromReplica bool
}

// findSet lists the stack's application-consistent snapshots of the run
// and/or instance and picks the set: the run's, else the newest complete one.
func (r *Runner) findSet(ctx context.Context, cfg *Config) (*volumeset.Set, error) {
	fs := []ec2types.Filter{volumeset.TagFilter(contract.TagStack, cfg.Stack), volumeset.TagFilter(contract.TagConsistency, contract.ConsistencyApplication)}
	if cfg.RunID != "" {
		fs = append(fs, volumeset.TagFilter(contract.TagRunID, cfg.RunID))
	}
	if cfg.SourceInstance != "" {
		fs = append(fs, volumeset.TagFilter(contract.TagInstance, cfg.SourceInstance))
	}
	all, err := volumeset.ListSnapshots(ctx, r.EC2, fs)
	if err != nil {
		return nil, fmt.Errorf("list the snapshots to clone: %w", err)
	}
	return pickSet(cfg, volumeset.Group(cfg.Stack, all))
}

func pickSet(cfg *Config, sets map[string]*volumeset.Set) (*volumeset.Set, error) {
	var keys []string
	for k, set := range sets {
		if set.Unusable() == "" || cfg.RunID != "" {
			keys = append(keys, k)
		}
	}
	switch {
	case len(keys) == 0:
		return nil, fmt.Errorf("no complete application-consistent snapshot set of %s to clone", describe(cfg))
	case cfg.RunID != "" && len(keys) > 1:
		sort.Strings(keys)
		return nil, fmt.Errorf("run %s has sets of several instances (%s): name clone.source_instance", cfg.RunID, strings.Join(keys, ", "))
	}
	sort.Slice(keys, func(a, b int) bool { return sets[keys[a]].Started().After(sets[keys[b]].Started()) })
	set := sets[keys[0]]
	if why := set.Unusable(); why != "" {
		return nil, fmt.Errorf("cannot clone: %s", why)
	}
	return set, nil
}

func describe(cfg *Config) string {
	parts := []string{"stack " + cfg.Stack}
	if cfg.SourceInstance != "" {
		parts = append(parts, "instance "+cfg.SourceInstance)
	}
	if cfg.RunID != "" {
		parts = append(parts, "run "+cfg.RunID)
	}
	return strings.Join(parts, ", ")
}

// planSet reads the members and the replication source from the tags.
func planSet(set []ec2types.Snapshot) (*plan, error) {
	first := tagMap(set[0].Tags)
	p := &plan{runID: first[contract.TagRunID], instanceID: first[contract.TagInstance]}
	seen := map[string]bool{}
	for _, s := range set {
		t := tagMap(s.Tags)
		m := member{SnapshotID: aws.ToString(s.SnapshotId), Device: t[contract.TagDevice], Mount: t[contract.TagMounts]}
		switch {
		case m.Device == "":
			return nil, fmt.Errorf("snapshot %s has no %s tag: the device to attach its volume at is unknown", m.SnapshotID, contract.TagDevice)
		case m.Mount == "" || strings.Contains(m.Mount, ","):
			return nil, fmt.Errorf("snapshot %s: %s is %q; clone takes exactly one mount point per volume", m.SnapshotID, contract.TagMounts, m.Mount)
		case seen[m.Device] || seen[m.Mount]:
			return nil, fmt.Errorf("snapshot %s: device %s or mount %s twice in the set", m.SnapshotID, m.Device, m.Mount)
		}
		seen[m.Device], seen[m.Mount] = true, true
		p.members = append(p.members, m)
	}
	if err := p.coordinates(first); err != nil {
		return nil, err
	}
	return p, nil
}

// coordinates: a set of a replica replicates from its source at the
// replica's source coordinates; a set of a primary from the primary at its
// own binlog position. GTIDs when the whole state is in the tag.
func (p *plan) coordinates(t map[string]string) error {
	gtid, file, pos := t[contract.TagGTID], t[contract.TagBinlogFile], t[contract.TagBinlogPos]
	if host := t[contract.TagSourceHost]; host != "" {
		p.fromReplica, p.sourceHost = true, host
		p.sourcePort, _ = strconv.Atoi(t[contract.TagSourcePort])
		gtid, file, pos = t[contract.TagSourceGTID], t[contract.TagSourceLogFile], t[contract.TagSourceLogPos]
		if t[contract.TagSourceGTIDTruncated] != "" {
			gtid = ""
		}
	}
	if strings.Contains(gtid, "truncated") {
		gtid = "" // cut to fit a tag value: not the position
	}
	switch n, err := strconv.ParseUint(pos, 10, 64); {
	case gtid != "":
		p.coords = contract.CloneCoordinates{Mode: contract.CloneByGTID, GTID: gtid}
	case file != "" && err == nil:
		p.coords = contract.CloneCoordinates{Mode: contract.CloneByFilePos, LogFile: file, LogPos: n}
	default:
		return fmt.Errorf("set %s of %s carries no replication coordinates (no binary log position or GTID state in its tags)", p.runID, p.instanceID)
	}
	return nil
}
