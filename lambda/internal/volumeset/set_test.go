package volumeset

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
)

func snap(id string, state ec2types.SnapshotState, start time.Time, tags map[string]string) ec2types.Snapshot {
	return ec2types.Snapshot{SnapshotId: aws.String(id), State: state, StartTime: aws.Time(start), Tags: awsapi.Tags(tags, nil)}
}

// Group keeps the stack's application-consistent snapshots of a run, one
// set per instance and run, each in device order.
func TestGroup(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tags := func(inst, run, dev, consistency string) map[string]string {
		return map[string]string{contract.TagStack: "st", contract.TagInstance: inst, contract.TagRunID: run, contract.TagDevice: dev, contract.TagConsistency: consistency}
	}
	done := ec2types.SnapshotStateCompleted
	sets := Group("st", []ec2types.Snapshot{
		snap("snap-g", done, at, tags("i-1", "r1", "/dev/sdg", "application")),
		snap("snap-f", done, at.Add(time.Second), tags("i-1", "r1", "/dev/sdf", "application")),
		snap("snap-2", done, at, tags("i-2", "r1", "/dev/sdf", "application")),
		snap("snap-crash", done, at, tags("i-1", "r1", "/dev/sdh", "crash")),
		snap("snap-other", done, at, map[string]string{contract.TagStack: "other", contract.TagInstance: "i-1", contract.TagRunID: "r1", contract.TagConsistency: "application"}),
		snap("snap-norun", done, at, tags("i-1", "", "/dev/sdf", "application")),
	})
	if len(sets) != 2 || sets["i-1/r1"] == nil || sets["i-2/r1"] == nil {
		t.Fatalf("sets %v", sets)
	}
	s := sets["i-1/r1"]
	if got := strings.Join(s.IDs(), ","); got != "snap-f,snap-g" || !s.Started().Equal(at.Add(time.Second)) || s.Unusable() != "" {
		t.Errorf("set i-1/r1: %s, started %s, unusable %q", got, s.Started(), s.Unusable())
	}
}

func TestUnusable(t *testing.T) {
	at := time.Now()
	incomplete := &Set{RunID: "r1", Snapshots: []ec2types.Snapshot{snap("snap-1", ec2types.SnapshotStateCompleted, at, map[string]string{contract.TagIncomplete: "true"})}}
	pending := &Set{RunID: "r1", Snapshots: []ec2types.Snapshot{snap("snap-1", ec2types.SnapshotStatePending, at, nil)}}
	for set, want := range map[*Set]string{incomplete: "set r1 is incomplete", pending: "snapshot snap-1 of set r1 is pending"} {
		if got := set.Unusable(); got != want {
			t.Errorf("Unusable = %q, want %q", got, want)
		}
	}
}
