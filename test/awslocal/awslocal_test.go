package awslocal

import (
	"context"
	"errors"
	"github.com/quiesce/quiesce/internal/clock"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
)

// clients returns real SDK clients pointed at s, without SDK retries so
// injected faults surface exactly.
func clients(t *testing.T, s *Server) (*ec2.Client, *ssm.Client) {
	t.Helper()
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", ""), RetryMaxAttempts: 1}
	e := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(hs.URL) })
	m := ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = aws.String(hs.URL) })
	return e, m
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func seed(s *Server) {
	s.AddInstance(Instance{ID: "i-0aaa", Tags: map[string]string{"quiesce:enabled": "true", "Name": "db1"},
		BlockDevices: []BlockDevice{{DeviceName: "/dev/xvda", VolumeID: "vol-0root1"}, {DeviceName: "/dev/xvdf", VolumeID: "vol-0data1"}, {DeviceName: "/dev/xvdg", VolumeID: "vol-0logs1"}}})
	s.AddInstance(Instance{ID: "i-0bbb", Tags: map[string]string{"quiesce:enabled": "true"},
		BlockDevices: []BlockDevice{{DeviceName: "/dev/xvda", VolumeID: "vol-0root2"}, {DeviceName: "/dev/xvdf", VolumeID: "vol-0data2"}}})
	s.AddInstance(Instance{ID: "i-0ccc", State: "stopped", Tags: map[string]string{"quiesce:enabled": "true"},
		BlockDevices: []BlockDevice{{DeviceName: "/dev/xvda", VolumeID: "vol-0root3"}}})
	s.AddInstance(Instance{ID: "i-0ddd", Tags: map[string]string{"quiesce:enabled": "false"}, PingStatus: "ConnectionLost",
		BlockDevices: []BlockDevice{{DeviceName: "/dev/xvda", VolumeID: "vol-0root4"}}})
}

func TestDescribeInstancesFiltersAndPagination(t *testing.T) {
	s := New()
	seed(s)
	e, _ := clients(t, s)
	ctx := context.Background()
	p := ec2.NewDescribeInstancesPaginator(e, &ec2.DescribeInstancesInput{
		MaxResults: aws.Int32(5),
		Filters: []ec2types.Filter{
			{Name: aws.String("tag:quiesce:enabled"), Values: []string{"true"}},
			{Name: aws.String("instance-state-name"), Values: []string{"running"}},
		}})
	var got []ec2types.Instance
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range out.Reservations {
			got = append(got, r.Instances...)
		}
	}
	if len(got) != 2 || aws.ToString(got[0].InstanceId) != "i-0aaa" || aws.ToString(got[1].InstanceId) != "i-0bbb" {
		t.Fatalf("instances = %+v", got)
	}
	in := got[0]
	if len(in.BlockDeviceMappings) != 3 || aws.ToString(in.BlockDeviceMappings[1].Ebs.VolumeId) != "vol-0data1" || aws.ToString(in.RootDeviceName) != "/dev/xvda" {
		t.Fatalf("block devices = %+v root=%v", in.BlockDeviceMappings, aws.ToString(in.RootDeviceName))
	}
	if in.State.Name != ec2types.InstanceStateNameRunning {
		t.Fatalf("state = %v", in.State.Name)
	}
	if len(in.Tags) != 2 {
		t.Fatalf("tags = %+v", in.Tags)
	}

	// Pagination with a small page: 4 instances, 2 per page would need MaxResults<5 which EC2
	// rejects, so check the token mechanics with the unfiltered list and MaxResults=5 vs 3 IDs.
	out, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0zzz"}})
	if apiCode(err) != "InvalidInstanceID.NotFound" {
		t.Fatalf("unknown instance: out=%v err=%v", out, err)
	}
}

// paginator is an SDK paginator of any service.
type paginator[Out, Opts any] interface {
	HasMorePages() bool
	NextPage(ctx context.Context, optFns ...func(Opts)) (Out, error)
}

// drain reads every page of p and returns the items counted on them and
// the number of pages.
func drain[Out, Opts any](t *testing.T, p paginator[Out, Opts], count func(Out) int) (items, pages int) {
	t.Helper()
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		items += count(out)
	}
	return items, pages
}

func TestPaginationTokens(t *testing.T) {
	s := New()
	for i := 0; i < 12; i++ {
		s.AddInstance(Instance{ID: "i-" + string(rune('a'+i)), BlockDevices: []BlockDevice{{DeviceName: "/dev/xvda", VolumeID: "vol-" + string(rune('a'+i))}}})
	}
	e, m := clients(t, s)
	n, pages := drain(t, ec2.NewDescribeInstancesPaginator(e, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)}),
		func(out *ec2.DescribeInstancesOutput) int { return len(out.Reservations) })
	if n != 12 || pages != 3 {
		t.Fatalf("got %d instances in %d pages, want 12 in 3", n, pages)
	}
	n, pages = drain(t, ssm.NewDescribeInstanceInformationPaginator(m, &ssm.DescribeInstanceInformationInput{MaxResults: aws.Int32(5)}),
		func(out *ssm.DescribeInstanceInformationOutput) int { return len(out.InstanceInformationList) })
	if n != 12 || pages != 3 {
		t.Fatalf("ssm: got %d in %d pages", n, pages)
	}
}

func TestSnapshotsTagsAndDelete(t *testing.T) {
	s := New()
	seed(s)
	var hooked []string
	var mu sync.Mutex
	s.OnSnapshot = func(_ context.Context, inst, vol, snap string) error {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, inst+"/"+vol)
		return nil
	}
	e, _ := clients(t, s)
	ctx := context.Background()
	tags := []ec2types.Tag{{Key: aws.String("quiesce:stack"), Value: aws.String("s1")}, {Key: aws.String("quiesce:run-id"), Value: aws.String("r1")}}
	out, err := e.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{
		InstanceSpecification: &ec2types.InstanceSpecification{InstanceId: aws.String("i-0aaa"), ExcludeBootVolume: aws.Bool(true), ExcludeDataVolumeIds: []string{"vol-0logs1"}},
		TagSpecifications:     []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSnapshot, Tags: tags}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Snapshots) != 1 || aws.ToString(out.Snapshots[0].VolumeId) != "vol-0data1" || len(out.Snapshots[0].Tags) != 2 {
		t.Fatalf("CreateSnapshots = %+v", out.Snapshots)
	}
	if len(hooked) != 1 || hooked[0] != "i-0aaa/vol-0data1" {
		t.Fatalf("OnSnapshot calls = %v", hooked)
	}
	snapID := aws.ToString(out.Snapshots[0].SnapshotId)

	one, err := e.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String("vol-0logs1"),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSnapshot, Tags: tags}}})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(one.VolumeId) != "vol-0logs1" || one.State != ec2types.SnapshotStateCompleted || len(one.Tags) != 2 {
		t.Fatalf("CreateSnapshot = %+v", one)
	}

	if _, err := e.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{snapID}, Tags: []ec2types.Tag{{Key: aws.String("quiesce:consistency"), Value: aws.String("crash")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{snapID}, Tags: []ec2types.Tag{{Key: aws.String("aws:x"), Value: aws.String("y")}}}); apiCode(err) != "InvalidParameterValue" {
		t.Fatalf("aws: prefix accepted: %v", err)
	}
	sn, _ := s.Snapshot(snapID)
	if sn.Tags["quiesce:consistency"] != "crash" || sn.Tags["quiesce:stack"] != "s1" {
		t.Fatalf("tags after CreateTags = %v", sn.Tags)
	}

	ds, err := e.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: []ec2types.Filter{
		{Name: aws.String("tag:quiesce:stack"), Values: []string{"s1"}}, {Name: aws.String("volume-id"), Values: []string{"vol-0data1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Snapshots) != 1 || aws.ToString(ds.Snapshots[0].SnapshotId) != snapID || ds.Snapshots[0].StartTime == nil {
		t.Fatalf("DescribeSnapshots = %+v", ds.Snapshots)
	}

	s.SetSnapshotInUse(snapID, true)
	if _, err := e.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snapID)}); apiCode(err) != "InvalidSnapshot.InUse" {
		t.Fatalf("delete in-use: %v", err)
	}
	if _, err := e.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: one.SnapshotId}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: one.SnapshotId}); apiCode(err) != "InvalidSnapshot.NotFound" {
		t.Fatalf("delete twice: %v", err)
	}
	calls := s.CallsOf("CreateSnapshots")
	if len(calls) != 1 || calls[0].Tags()["quiesce:run-id"] != "r1" || calls[0].Form.Get("InstanceSpecification.ExcludeDataVolumeId.1") != "vol-0logs1" {
		t.Fatalf("recorded call = %+v", calls)
	}
}

func TestFaults(t *testing.T) {
	s := New()
	seed(s)
	s.SetFault("CreateSnapshot", Fault{Code: "RequestLimitExceeded", Times: 2})
	s.SetFault("GetCommandInvocation", Fault{Code: "ThrottlingException", Skip: 1, Times: 1})
	e, m := clients(t, s)
	ctx := context.Background()
	for i, want := range []string{"RequestLimitExceeded", "RequestLimitExceeded", ""} {
		_, err := e.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String("vol-0data1")})
		if apiCode(err) != want {
			t.Fatalf("call %d: err=%v want %q", i, err, want)
		}
		var re interface{ HTTPStatusCode() int }
		if want != "" && (!errors.As(err, &re) || re.HTTPStatusCode() != 503) {
			t.Fatalf("call %d: status of %v, want 503", i, err)
		}
	}
	get := func() error {
		_, err := m.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String("nope"), InstanceId: aws.String("i-0aaa")})
		return err
	}
	if err := get(); apiCode(err) != "InvocationDoesNotExist" {
		t.Fatalf("first: %v", err)
	}
	var ide *ssmtypes.InvocationDoesNotExist
	if err := get(); apiCode(err) != "ThrottlingException" {
		t.Fatalf("second: %v", err)
	}
	if err := get(); !errors.As(err, &ide) {
		t.Fatalf("third: want typed InvocationDoesNotExist, got %T %v", err, err)
	}

	// AfterEffect: the snapshot exists although the call failed.
	s.SetFault("CreateSnapshots", Fault{Code: "InternalError", AfterEffect: true, Times: 1})
	before := len(s.Snapshots())
	_, err := e.CreateSnapshots(ctx, &ec2.CreateSnapshotsInput{InstanceSpecification: &ec2types.InstanceSpecification{InstanceId: aws.String("i-0bbb")}})
	if apiCode(err) != "InternalError" {
		t.Fatalf("after-effect fault: %v", err)
	}
	if got := len(s.Snapshots()) - before; got != 2 {
		t.Fatalf("after-effect created %d snapshots, want 2", got)
	}
}

func TestSendCommandLifecycle(t *testing.T) {
	s := New()
	seed(s)
	s.ResultDelay = 30 * time.Millisecond
	release := make(chan struct{})
	s.RunCommand = func(ctx context.Context, inv Invocation) CommandResult {
		<-release
		if inv.Param("action") == "freeze" {
			return CommandResult{Stdout: `{"run_id":"` + inv.Param("runId") + `"}`}
		}
		return CommandResult{ResponseCode: 3, Stdout: `{"error":"busy","exit_code":3}`}
	}
	_, m := clients(t, s)
	ctx := context.Background()
	out, err := m.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("Quiesce"), InstanceIds: []string{"i-0aaa"},
		Parameters: map[string][]string{"action": {"freeze"}, "runId": {"r1"}}, TimeoutSeconds: aws.Int32(60)})
	if err != nil {
		t.Fatal(err)
	}
	id := out.Command.CommandId
	inv, err := m.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: id, InstanceId: aws.String("i-0aaa")})
	if err != nil {
		t.Fatal(err)
	}
	if inv.Status != ssmtypes.CommandInvocationStatusPending && inv.Status != ssmtypes.CommandInvocationStatusInProgress {
		t.Fatalf("status before run = %v", inv.Status)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		inv, err = m.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: id, InstanceId: aws.String("i-0aaa")})
		if err != nil {
			t.Fatal(err)
		}
		if inv.Status == ssmtypes.CommandInvocationStatusSuccess || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if inv.Status != ssmtypes.CommandInvocationStatusSuccess || aws.ToString(inv.StandardOutputContent) != `{"run_id":"r1"}` || inv.ResponseCode != 0 {
		t.Fatalf("final = %v %q %d", inv.Status, aws.ToString(inv.StandardOutputContent), inv.ResponseCode)
	}

	out, err = m.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("Quiesce"), InstanceIds: []string{"i-0bbb"}, Parameters: map[string][]string{"action": {"thaw"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitCommands(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(40 * time.Millisecond) // past ResultDelay
	inv, err = m.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: out.Command.CommandId, InstanceId: aws.String("i-0bbb")})
	if err != nil || inv.Status != ssmtypes.CommandInvocationStatusFailed || inv.ResponseCode != 3 {
		t.Fatalf("failed command = %+v err=%v", inv, err)
	}

	if _, err := m.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("Quiesce"), InstanceIds: []string{"i-0nope"}}); apiCode(err) != "InvalidInstanceId" {
		t.Fatalf("unknown instance: %v", err)
	}

	info, err := m.DescribeInstanceInformation(ctx, &ssm.DescribeInstanceInformationInput{Filters: []ssmtypes.InstanceInformationStringFilter{
		{Key: aws.String("InstanceIds"), Values: []string{"i-0aaa", "i-0ddd"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(info.InstanceInformationList) != 2 || info.InstanceInformationList[1].PingStatus != ssmtypes.PingStatusConnectionLost {
		t.Fatalf("instance info = %+v", info.InstanceInformationList)
	}
	if got := s.Commands(); len(got) != 2 || got[0].Param("action") != "freeze" {
		t.Fatalf("commands = %+v", got)
	}
}

func TestSnapshotLimits(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := &Server{Clock: clk, SnapshotCompleteAfter: 5 * time.Minute, Limits: Limits{Enforce: true, Bucket: 3, Refill: 1}}
	seed(s)
	e, _ := clients(t, s)
	ctx := context.Background()
	snap := func(vol string) string {
		_, err := e.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)})
		return apiCode(err)
	}
	if c := snap("vol-0data1"); c != "" {
		t.Fatal(c)
	}
	if c := snap("vol-0data1"); c != "SnapshotCreationPerVolumeRateExceeded" {
		t.Fatalf("second snapshot within 15s: %q", c)
	}
	if c := snap("vol-0data2"); c != "" {
		t.Fatal(c)
	}
	if c := snap("vol-0logs1"); c != "" {
		t.Fatal(c)
	}
	if c := snap("vol-0root1"); c != "RequestLimitExceeded" {
		t.Fatalf("bucket of 3 exhausted: %q", c)
	}
	clk.Advance(time.Second)
	if c := snap("vol-0root1"); c != "" {
		t.Fatalf("after refill: %q", c)
	}
	// Pending per volume: with the first one, 5 pending snapshots of vol-0data2 block the sixth.
	s.Limits.Bucket, s.Limits.Refill = 1000, 1000
	for i := 0; i < 4; i++ {
		clk.Advance(16 * time.Second)
		if c := snap("vol-0data2"); c != "" {
			t.Fatalf("snapshot %d: %q", i, c)
		}
	}
	clk.Advance(16 * time.Second)
	if c := snap("vol-0data2"); c != "ConcurrentSnapshotLimitExceeded" {
		t.Fatalf("with 5 pending: %q", c)
	}
	clk.Advance(10 * time.Minute) // all completed
	if c := snap("vol-0data2"); c != "" {
		t.Fatalf("after completion: %q", c)
	}
	st := s.Stats()
	if st.Throttled != 1 || st.PerVolumeRate != 1 || st.ConcurrentSnapshot != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestEC2ParameterRulesAndEventualConsistency(t *testing.T) {
	s := New()
	seed(s)
	s.InvocationDelay = 50 * time.Millisecond
	e, m := clients(t, s)
	ctx := context.Background()
	if _, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0aaa"}, MaxResults: aws.Int32(5)}); apiCode(err) != "InvalidParameterCombination" {
		t.Fatalf("InstanceIds+MaxResults: %v", err)
	}
	if _, err := e.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{MaxResults: aws.Int32(2)}); apiCode(err) != "InvalidParameterValue" {
		t.Fatalf("MaxResults 2: %v", err)
	}
	out, err := m.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String("Quiesce"), InstanceIds: []string{"i-0aaa"}})
	if err != nil {
		t.Fatal(err)
	}
	in := &ssm.GetCommandInvocationInput{CommandId: out.Command.CommandId, InstanceId: aws.String("i-0aaa")}
	if _, err := m.GetCommandInvocation(ctx, in); apiCode(err) != "InvocationDoesNotExist" {
		t.Fatalf("right after SendCommand: %v", err)
	}
	time.Sleep(60 * time.Millisecond)
	if _, err := m.GetCommandInvocation(ctx, in); err != nil {
		t.Fatalf("after the delay: %v", err)
	}
}
