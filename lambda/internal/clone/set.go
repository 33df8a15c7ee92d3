package clone

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
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
func (r *Runner) findSet(ctx context.Context, cfg *Config) ([]ec2types.Snapshot, error) {
	fs := []ec2types.Filter{
		{Name: aws.String("tag:" + contract.TagStack), Values: []string{cfg.Stack}},
		{Name: aws.String("tag:" + contract.TagConsistency), Values: []string{contract.ConsistencyApplication}},
	}
	if cfg.RunID != "" {
		fs = append(fs, ec2types.Filter{Name: aws.String("tag:" + contract.TagRunID), Values: []string{cfg.RunID}})
	}
	if cfg.SourceInstance != "" {
		fs = append(fs, ec2types.Filter{Name: aws.String("tag:" + contract.TagInstance), Values: []string{cfg.SourceInstance}})
	}
	var all []ec2types.Snapshot
	in := &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: fs, MaxResults: aws.Int32(1000)}
	for pages := ec2.NewDescribeSnapshotsPaginator(r.EC2, in); pages.HasMorePages(); {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list the snapshots to clone: %w", err)
		}
		all = append(all, out.Snapshots...)
	}
	sets := map[string][]ec2types.Snapshot{} // instance/run → snapshots
	for _, s := range all {
		t := tagMap(s.Tags)
		if t[contract.TagStack] == cfg.Stack && t[contract.TagConsistency] == contract.ConsistencyApplication && t[contract.TagRunID] != "" {
			key := t[contract.TagInstance] + "/" + t[contract.TagRunID]
			sets[key] = append(sets[key], s)
		}
	}
	return pickSet(cfg, sets)
}

func pickSet(cfg *Config, sets map[string][]ec2types.Snapshot) ([]ec2types.Snapshot, error) {
	var keys []string
	for k, snaps := range sets {
		if usable(snaps) == "" || cfg.RunID != "" {
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
	sort.Slice(keys, func(a, b int) bool { return startOf(sets[keys[a]]).After(startOf(sets[keys[b]])) })
	set := sets[keys[0]]
	if why := usable(set); why != "" {
		return nil, fmt.Errorf("cannot clone: %s", why)
	}
	sort.SliceStable(set, func(a, b int) bool {
		return tagMap(set[a].Tags)[contract.TagDevice] < tagMap(set[b].Tags)[contract.TagDevice]
	})
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

// usable says why a set cannot be cloned ("" when it can).
func usable(set []ec2types.Snapshot) string {
	for _, s := range set {
		t := tagMap(s.Tags)
		if t[contract.TagIncomplete] == "true" {
			return "set " + t[contract.TagRunID] + " is incomplete"
		}
		if s.State != ec2types.SnapshotStateCompleted {
			return fmt.Sprintf("snapshot %s of set %s is %s", aws.ToString(s.SnapshotId), t[contract.TagRunID], s.State)
		}
	}
	return ""
}

func startOf(set []ec2types.Snapshot) time.Time {
	var t time.Time
	for _, s := range set {
		if st := aws.ToTime(s.StartTime); st.After(t) {
			t = st
		}
	}
	return t
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
