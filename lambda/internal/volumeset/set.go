// Package volumeset is the part the verify and clone actions share: both
// restore one snapshot set onto new EBS volumes on another instance
// (docs/architecture.md, "Restore verification" and "Cloning a replica from
// a set"). It finds and groups the sets, reads the instance the volumes go
// to, creates the volumes in its Availability Zone tagged at creation,
// attaches them, records progress in their tags, and detaches and deletes
// them again. Each action keeps what is its own: which set, where each
// volume is attached, its tags, its document and its report.
package volumeset

import (
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
)

// Set is one run's snapshots of one instance, in device order.
type Set struct {
	InstanceID, RunID string
	Snapshots         []ec2types.Snapshot
}

// IDs are the snapshot IDs, in the set's order.
func (s *Set) IDs() []string {
	out := make([]string, len(s.Snapshots))
	for i, sn := range s.Snapshots {
		out[i] = aws.ToString(sn.SnapshotId)
	}
	return out
}

// Unusable says why the set cannot be restored ("" when it can): every
// member must be completed and none marked incomplete.
func (s *Set) Unusable() string {
	for _, sn := range s.Snapshots {
		if awsapi.TagMap(sn.Tags)[contract.TagIncomplete] == "true" {
			return "set " + s.RunID + " is incomplete"
		}
		if sn.State != ec2types.SnapshotStateCompleted {
			return fmt.Sprintf("snapshot %s of set %s is %s", aws.ToString(sn.SnapshotId), s.RunID, sn.State)
		}
	}
	return ""
}

// Started is when the set was taken: its latest snapshot's start.
func (s *Set) Started() time.Time {
	var t time.Time
	for _, sn := range s.Snapshots {
		if st := aws.ToTime(sn.StartTime); st.After(t) {
			t = st
		}
	}
	return t
}

// Group sorts the stack's application-consistent snapshots into sets by
// instance and run, keyed "instance/run" (as messages name a set), each in
// device order. Snapshots of another stack, of a
// lower consistency or of no run are left out: the orphans of an abandoned
// snapshot call share the run ID but are tagged crash and incomplete.
func Group(stack string, snaps []ec2types.Snapshot) map[string]*Set {
	sets := map[string]*Set{}
	for _, sn := range snaps {
		t := awsapi.TagMap(sn.Tags)
		if t[contract.TagStack] != stack || t[contract.TagConsistency] != contract.ConsistencyApplication || t[contract.TagRunID] == "" {
			continue
		}
		key := t[contract.TagInstance] + "/" + t[contract.TagRunID]
		set := sets[key]
		if set == nil {
			set = &Set{InstanceID: t[contract.TagInstance], RunID: t[contract.TagRunID]}
			sets[key] = set
		}
		set.Snapshots = append(set.Snapshots, sn)
	}
	for _, set := range sets {
		sort.SliceStable(set.Snapshots, func(a, b int) bool {
			return awsapi.TagMap(set.Snapshots[a].Tags)[contract.TagDevice] < awsapi.TagMap(set.Snapshots[b].Tags)[contract.TagDevice]
		})
	}
	return sets
}
