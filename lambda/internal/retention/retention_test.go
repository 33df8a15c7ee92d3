package retention

import (
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

var now = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)

func snap(id, vol string, age time.Duration, tags ...string) ec2types.Snapshot {
	s := ec2types.Snapshot{SnapshotId: aws.String(id), VolumeId: aws.String(vol), StartTime: aws.Time(now.Add(-age)), State: ec2types.SnapshotStateCompleted}
	tags = append([]string{"quiesce:stack", "prod"}, tags...)
	for i := 0; i+1 < len(tags); i += 2 {
		s.Tags = append(s.Tags, ec2types.Tag{Key: aws.String(tags[i]), Value: aws.String(tags[i+1])})
	}
	return s
}

func TestPlan(t *testing.T) {
	day := 24 * time.Hour
	snaps := []ec2types.Snapshot{
		snap("s-now", "vol-a", 0, "quiesce:run-id", "run-now"),
		snap("s-1d", "vol-a", 1*day),
		snap("s-2d", "vol-a", 2*day),
		snap("s-3d", "vol-a", 3*day),
		snap("s-4d-incomplete", "vol-a", 4*day, "quiesce:incomplete", "true"),
		snap("s-5d", "vol-a", 5*day),
		snap("b-1d", "vol-b", 1*day),
		snap("b-9d", "vol-b", 9*day),
	}
	pending := snap("b-pending-old", "vol-b", 40*day)
	pending.State = ec2types.SnapshotStatePending
	other := snap("other-stack", "vol-a", 90*day)
	other.Tags[0].Value = aws.String("someone-else")
	snaps = append(snaps, pending, other)

	tests := []struct {
		name string
		p    Policy
		want []string
	}{
		{"keep_last 3 (pending is kept but does not count, incomplete does not count)", Policy{KeepLast: 3}, []string{"s-3d", "s-4d-incomplete", "s-5d"}},
		{"max_age 2.5d", Policy{MaxAge: 60 * time.Hour}, []string{"b-9d", "s-3d", "s-4d-incomplete", "s-5d"}},
		{"union: keep_last 2 or younger than 3.5d", Policy{KeepLast: 2, MaxAge: 84 * time.Hour}, []string{"s-4d-incomplete", "s-5d"}},
		{"only volumes of successful instances", Policy{KeepLast: 1, Volumes: map[string]bool{"vol-b": true}}, []string{"b-9d"}},
		{"no rules, no deletes", Policy{}, nil},
		{"keep_last 1: the newest is this run's", Policy{KeepLast: 1}, []string{"b-9d", "s-1d", "s-2d", "s-3d", "s-4d-incomplete", "s-5d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.p
			p.Stack, p.Now = "prod", now
			if p.RunID == "" {
				p.RunID = "run-now"
			}
			got := Plan(p, snaps)
			sort.Strings(got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Plan = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPlanNeverPrunesThisRun(t *testing.T) {
	snaps := []ec2types.Snapshot{
		snap("newer", "vol-a", time.Hour),
		snap("this-run", "vol-a", 48*time.Hour, "quiesce:run-id", "run-x"),
		snap("older", "vol-a", 72*time.Hour),
	}
	got := Plan(Policy{Stack: "prod", RunID: "run-x", KeepLast: 1, Now: now}, snaps)
	if !reflect.DeepEqual(got, []string{"older"}) {
		t.Fatalf("Plan = %v", got)
	}
}

// keep_last counts only completed snapshots: this run's snapshots are still
// pending when retention runs, and a pending snapshot can still end in
// "error"; counting it would delete the last restorable snapshot first.
func TestKeepLastCountsCompletedOnly(t *testing.T) {
	fresh := snap("this-run", "vol-a", time.Minute, "quiesce:run-id", "run-x")
	fresh.State = ec2types.SnapshotStatePending
	failed := snap("failed-1h", "vol-a", time.Hour)
	failed.State = ec2types.SnapshotStateError
	snaps := []ec2types.Snapshot{fresh, failed, snap("good-1d", "vol-a", 24*time.Hour), snap("good-2d", "vol-a", 48*time.Hour)}
	got := Plan(Policy{Stack: "prod", RunID: "run-x", KeepLast: 1, Now: now}, snaps)
	sort.Strings(got)
	if !reflect.DeepEqual(got, []string{"failed-1h", "good-2d"}) {
		t.Fatalf("Plan = %v, want the errored one and good-2d deleted, good-1d kept until this run's snapshot completes", got)
	}
}
