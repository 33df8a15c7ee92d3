package retention

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// fakeEC2 serves DescribeSnapshots, DescribeVolumes and DeleteSnapshot.
type fakeEC2 struct {
	snaps       []ec2types.Snapshot
	volumes     func(in *ec2.DescribeVolumesInput) (*ec2.DescribeVolumesOutput, error)
	deleted     []string
	volumeQuery []ec2types.Filter
}

func (f *fakeEC2) DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	panic("unused")
}
func (f *fakeEC2) CreateSnapshot(context.Context, *ec2.CreateSnapshotInput, ...func(*ec2.Options)) (*ec2.CreateSnapshotOutput, error) {
	panic("unused")
}
func (f *fakeEC2) CreateSnapshots(context.Context, *ec2.CreateSnapshotsInput, ...func(*ec2.Options)) (*ec2.CreateSnapshotsOutput, error) {
	panic("unused")
}
func (f *fakeEC2) CreateTags(context.Context, *ec2.CreateTagsInput, ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	panic("unused")
}
func (f *fakeEC2) DescribeSnapshots(context.Context, *ec2.DescribeSnapshotsInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	return &ec2.DescribeSnapshotsOutput{Snapshots: f.snaps}, nil
}
func (f *fakeEC2) DeleteSnapshot(_ context.Context, in *ec2.DeleteSnapshotInput, _ ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	f.deleted = append(f.deleted, aws.ToString(in.SnapshotId))
	return &ec2.DeleteSnapshotOutput{}, nil
}
func (f *fakeEC2) DescribeVolumes(_ context.Context, in *ec2.DescribeVolumesInput, _ ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	f.volumeQuery = in.Filters
	return f.volumes(in)
}

// A snapshot a verification is restoring (a verify volume of the stack was
// created from it) is kept, however old; the others go as the policy says.
func TestPruneKeepsSnapshotsBeingVerified(t *testing.T) {
	f := &fakeEC2{snaps: []ec2types.Snapshot{
		snap("new", "vol-a", time.Hour), snap("old-verifying", "vol-a", 72*time.Hour), snap("old", "vol-a", 96*time.Hour),
	}, volumes: func(*ec2.DescribeVolumesInput) (*ec2.DescribeVolumesOutput, error) {
		return &ec2.DescribeVolumesOutput{Volumes: []ec2types.Volume{{VolumeId: aws.String("vol-tmp"), SnapshotId: aws.String("old-verifying")}}}, nil
	}}
	out, err := Prune(context.Background(), f, Policy{Stack: "prod", RunID: "run-now", KeepLast: 1, Now: now}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(f.deleted)
	if !reflect.DeepEqual(f.deleted, []string{"old"}) || !reflect.DeepEqual(out.Verifying, []string{"old-verifying"}) {
		t.Fatalf("deleted %v, kept for verification %v", f.deleted, out.Verifying)
	}
	want := map[string]string{"tag:quiesce:stack": "prod", "tag:quiesce:purpose": "verify"}
	if len(f.volumeQuery) != len(want) {
		t.Fatalf("DescribeVolumes filters = %+v", f.volumeQuery)
	}
	for _, fl := range f.volumeQuery {
		if want[aws.ToString(fl.Name)] != fl.Values[0] || len(fl.Values) != 1 {
			t.Fatalf("DescribeVolumes filters = %+v", f.volumeQuery)
		}
	}
}

// Not knowing which snapshots are being verified stops the pass.
func TestPruneStopsWhenVerifyVolumesCannotBeListed(t *testing.T) {
	f := &fakeEC2{snaps: []ec2types.Snapshot{snap("new", "vol-a", time.Hour), snap("old", "vol-a", 96*time.Hour)},
		volumes: func(*ec2.DescribeVolumesInput) (*ec2.DescribeVolumesOutput, error) {
			return nil, errors.New("UnauthorizedOperation")
		}}
	_, err := Prune(context.Background(), f, Policy{Stack: "prod", RunID: "run-now", KeepLast: 1, Now: now}, slog.New(slog.DiscardHandler))
	if err == nil || len(f.deleted) != 0 {
		t.Fatalf("err %v, deleted %v: want an error and nothing deleted", err, f.deleted)
	}
}
