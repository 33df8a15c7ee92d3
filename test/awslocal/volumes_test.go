package awslocal

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/internal/clock"
)

func volumeTagSpec(kv ...string) []ec2types.TagSpecification {
	var tags []ec2types.Tag
	for i := 0; i+1 < len(kv); i += 2 {
		tags = append(tags, ec2types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeVolume, Tags: tags}}
}

func describeVolume(t *testing.T, e *ec2.Client, id string) ec2types.Volume {
	t.Helper()
	out, err := e.DescribeVolumes(context.Background(), &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
	if err != nil || len(out.Volumes) != 1 {
		t.Fatalf("DescribeVolumes %s: %v %+v", id, err, out)
	}
	return out.Volumes[0]
}

// The whole life of a volume made from a snapshot, through the real SDK:
// creating → available → (attaching) in-use → (detaching) available → gone,
// with the timed transitions on the server's clock and EC2's refusals on
// the way.
func TestVolumeLifecycle(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	s := &Server{Clock: clk, VolumeDelays: VolumeDelays{Create: 10 * time.Second, Attach: 2 * time.Second, Detach: 3 * time.Second}}
	seed(s)
	s.AddInstance(Instance{ID: "i-0ver", Tags: map[string]string{"quiesce:role": "verifier"}, AvailabilityZone: "us-east-1b",
		BlockDevices: []BlockDevice{{DeviceName: "/dev/xvda", VolumeID: "vol-0verroot"}, {DeviceName: "/dev/sdf", VolumeID: "vol-0verdata"}}})
	snap := s.AddSnapshot(Snapshot{VolumeID: "vol-0data1", VolumeSize: 20, Tags: map[string]string{"quiesce:stack": "st"}})
	e, _ := clients(t, s)
	ctx := context.Background()

	if _, err := e.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: aws.String("snap-0nope")}); apiCode(err) != "InvalidSnapshot.NotFound" {
		t.Fatalf("CreateVolume of a missing snapshot: %v", err)
	}
	if _, err := e.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: aws.String(snap),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSnapshot}}}); apiCode(err) != "InvalidParameterValue" {
		t.Fatalf("CreateVolume with snapshot tag specification: %v", err)
	}
	cv, err := e.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: aws.String(snap),
		VolumeType: ec2types.VolumeTypeGp3, ClientToken: aws.String("tok-1"), TagSpecifications: volumeTagSpec("quiesce:purpose", "verify", "quiesce:stack", "st")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(cv.VolumeId)
	if cv.State != ec2types.VolumeStateCreating || aws.ToInt32(cv.Size) != 20 || aws.ToString(cv.SnapshotId) != snap || aws.ToString(cv.AvailabilityZone) != "us-east-1b" || len(cv.Tags) != 2 {
		t.Fatalf("CreateVolume = %+v", cv)
	}
	again, err := e.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: aws.String(snap), ClientToken: aws.String("tok-1")})
	if err != nil || aws.ToString(again.VolumeId) != id {
		t.Fatalf("repeated ClientToken made another volume: %v %v", err, again.VolumeId)
	}
	// Filter by tag and by volume id.
	byTag, err := e.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: aws.String("tag:quiesce:purpose"), Values: []string{"verify"}}}})
	if err != nil || len(byTag.Volumes) != 1 || aws.ToString(byTag.Volumes[0].VolumeId) != id {
		t.Fatalf("DescribeVolumes by tag: %v %+v", err, byTag)
	}
	attach := func(vol, dev string) error {
		_, err := e.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String("i-0ver"), Device: aws.String(dev)})
		return err
	}
	if err := attach(id, "/dev/sdg"); apiCode(err) != "IncorrectState" {
		t.Fatalf("attach while creating: %v", err)
	}
	if _, err := e.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)}); apiCode(err) != "IncorrectState" {
		t.Fatalf("delete while creating: %v", err)
	}
	clk.Advance(10 * time.Second)
	if v := describeVolume(t, e, id); v.State != ec2types.VolumeStateAvailable || len(v.Attachments) != 0 {
		t.Fatalf("after the create delay: %+v", v)
	}
	for dev, code := range map[string]string{"/dev/sdf": "InvalidParameterValue", "/dev/xvdf": "InvalidParameterValue", "/dev/hda": "InvalidParameterValue", "/dev/xvda": "InvalidParameterValue"} {
		if err := attach(id, dev); apiCode(err) != code {
			t.Fatalf("attach at %s: %v, want %s", dev, err, code)
		}
	}
	if _, err := e.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(id), InstanceId: aws.String("i-0aaa"), Device: aws.String("/dev/sdk")}); apiCode(err) != "InvalidVolume.ZoneMismatch" {
		t.Fatalf("attach in another zone: %v", err)
	}
	av, err := e.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: aws.String(id), InstanceId: aws.String("i-0ver"), Device: aws.String("/dev/sdg")})
	if err != nil || av.State != ec2types.VolumeAttachmentStateAttaching || aws.ToString(av.Device) != "/dev/sdg" {
		t.Fatalf("AttachVolume = %+v, %v", av, err)
	}
	if err := attach(id, "/dev/sdh"); apiCode(err) != "VolumeInUse" {
		t.Fatalf("second attach: %v", err)
	}
	if v := describeVolume(t, e, id); v.State != ec2types.VolumeStateInUse || v.Attachments[0].State != ec2types.VolumeAttachmentStateAttaching {
		t.Fatalf("while attaching: %+v", v)
	}
	clk.Advance(2 * time.Second)
	v := describeVolume(t, e, id)
	if len(v.Attachments) != 1 || v.Attachments[0].State != ec2types.VolumeAttachmentStateAttached || aws.ToString(v.Attachments[0].InstanceId) != "i-0ver" {
		t.Fatalf("attached: %+v", v)
	}
	inst, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0ver"}})
	if err != nil || len(inst.Reservations[0].Instances[0].BlockDeviceMappings) != 3 {
		t.Fatalf("verifier's block device mappings after attach: %v %+v", err, inst)
	}
	byAttach, err := e.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []ec2types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{"i-0ver"}}}})
	if err != nil || len(byAttach.Volumes) != 3 {
		t.Fatalf("volumes attached to the verifier: %v %d", err, len(byAttach.Volumes))
	}
	if _, err := e.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)}); apiCode(err) != "VolumeInUse" {
		t.Fatalf("delete while attached: %v", err)
	}
	dv, err := e.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(id)})
	if err != nil || dv.State != ec2types.VolumeAttachmentStateDetaching {
		t.Fatalf("DetachVolume = %+v, %v", dv, err)
	}
	if _, err := e.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(id)}); apiCode(err) != "IncorrectState" {
		t.Fatalf("detach while detaching: %v", err)
	}
	if _, err := e.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)}); apiCode(err) != "VolumeInUse" {
		t.Fatalf("delete while detaching: %v", err)
	}
	clk.Advance(3 * time.Second)
	if v := describeVolume(t, e, id); v.State != ec2types.VolumeStateAvailable || len(v.Attachments) != 0 {
		t.Fatalf("after detach: %+v", v)
	}
	if _, err := e.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: aws.String(id)}); apiCode(err) != "IncorrectState" {
		t.Fatalf("detach of an available volume: %v", err)
	}
	if _, err := e.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []ec2types.Tag{{Key: aws.String("quiesce:verify-state"), Value: aws.String("cleanup")}}}); err != nil {
		t.Fatal(err)
	}
	if v := describeVolume(t, e, id); len(v.Tags) != 3 {
		t.Fatalf("tags after CreateTags: %+v", v.Tags)
	}
	if _, err := e.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{id}}); apiCode(err) != "InvalidVolume.NotFound" {
		t.Fatalf("describe a deleted volume: %v", err)
	}
	if _, err := e.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: aws.String(id)}); apiCode(err) != "InvalidVolume.NotFound" {
		t.Fatalf("delete twice: %v", err)
	}
	for _, v := range s.Volumes() {
		if v.CreatedBy == "CreateVolume" {
			t.Fatalf("volume left: %+v", v)
		}
	}
}

// A snapshot still pending cannot be restored yet (EC2: IncorrectState).
func TestCreateVolumeFromPendingSnapshot(t *testing.T) {
	s := &Server{SnapshotCompleteAfter: time.Hour}
	snap := s.AddSnapshot(Snapshot{VolumeID: "vol-0data1", VolumeSize: 8})
	e, _ := clients(t, s)
	_, err := e.CreateVolume(context.Background(), &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), SnapshotId: aws.String(snap)})
	if apiCode(err) != "IncorrectState" {
		t.Fatalf("CreateVolume of a pending snapshot: %v", err)
	}
}

// The hooks run after EC2's checks; an *APIError from a hook is the call's
// error (a detach refused while mounted), any other error is InternalError,
// and a refused call changes nothing.
func TestVolumeHooks(t *testing.T) {
	s := New()
	s.AddInstance(Instance{ID: "i-0ver", BlockDevices: []BlockDevice{{DeviceName: "/dev/xvda", VolumeID: "vol-0verroot"}}})
	snap := s.AddSnapshot(Snapshot{VolumeID: "vol-0src", VolumeSize: 8})
	var calls []string
	mounted := true
	s.VolumeHooks = VolumeHooks{
		OnCreateVolume: func(_ context.Context, vol, sn string) error { calls = append(calls, "create "+sn); return nil },
		OnAttachVolume: func(_ context.Context, inst, vol, dev string) error {
			calls = append(calls, "attach "+inst+" "+dev)
			return nil
		},
		OnDetachVolume: func(_ context.Context, inst, vol, dev string, force bool) error {
			calls = append(calls, "detach "+inst+" "+dev)
			if mounted {
				return &APIError{Code: "IncorrectState", Message: "mounted"}
			}
			return nil
		},
		OnDeleteVolume: func(_ context.Context, vol string) error {
			calls = append(calls, "delete")
			return errors.New("disk full")
		},
	}
	e, _ := clients(t, s)
	ctx := context.Background()
	cv, err := e.CreateVolume(ctx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), SnapshotId: aws.String(snap)})
	if err != nil {
		t.Fatal(err)
	}
	id := cv.VolumeId
	if _, err := e.AttachVolume(ctx, &ec2.AttachVolumeInput{VolumeId: id, InstanceId: aws.String("i-0ver"), Device: aws.String("/dev/sdf")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: id}); apiCode(err) != "IncorrectState" {
		t.Fatalf("detach while mounted: %v", err)
	}
	if v := describeVolume(t, e, *id); len(v.Attachments) != 1 || v.Attachments[0].State != ec2types.VolumeAttachmentStateAttached {
		t.Fatalf("a refused detach changed the volume: %+v", v)
	}
	mounted = false
	if _, err := e.DetachVolume(ctx, &ec2.DetachVolumeInput{VolumeId: id, Force: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: id}); apiCode(err) != "InternalError" {
		t.Fatalf("delete with a failing hook: %v", err)
	}
	if len(s.Volumes()) != 2 {
		t.Fatalf("a failed delete removed the volume: %+v", s.Volumes())
	}
	want := []string{"create " + snap, "attach i-0ver /dev/sdf", "detach i-0ver /dev/sdf", "detach i-0ver /dev/sdf", "delete"}
	if len(calls) != len(want) {
		t.Fatalf("hook calls = %q, want %q", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Fatalf("hook calls = %q, want %q", calls, want)
		}
	}
}
