package awslocal

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/quiesce/quiesce/ssmdoc"
)

// With Documents set, SendCommand behaves like SSM: an unknown document is
// InvalidDocument, a value outside allowedValues/allowedPattern, an
// undeclared parameter or a list of values is InvalidParameters — and
// nothing runs on the instance.
func TestSendCommandValidatesAgainstTheDocument(t *testing.T) {
	doc, err := ssmdoc.Quiesce()
	if err != nil {
		t.Fatal(err)
	}
	s := New()
	seed(s)
	s.Documents = map[string]*ssmdoc.Document{"Quiesce": doc}
	var mu sync.Mutex
	ran := 0
	s.RunCommand = func(context.Context, Invocation) CommandResult {
		mu.Lock()
		defer mu.Unlock()
		ran++
		return CommandResult{}
	}
	_, m := clients(t, s)
	ctx := context.Background()
	send := func(doc string, p map[string][]string) error {
		_, err := m.SendCommand(ctx, &ssm.SendCommandInput{DocumentName: aws.String(doc), InstanceIds: []string{"i-0aaa"}, Parameters: p})
		return err
	}
	for _, tt := range []struct {
		doc    string
		params map[string][]string
		code   string
		names  string
	}{
		{"Quiesce", map[string][]string{"action": {"freeze"}, "mysqlLock": {"flush"}}, "InvalidParameters", `mysqlLock: value "flush"`},
		{"Quiesce", map[string][]string{"action": {"freeze"}, "mounts": {"/data;reboot"}}, "InvalidParameters", "mounts"},
		{"Quiesce", map[string][]string{"action": {"freeze"}, "runId": {"-x"}}, "InvalidParameters", "runId"},
		{"Quiesce", map[string][]string{"action": {"freeze"}, "color": {"red"}}, "InvalidParameters", `"color"`},
		{"Quiesce", map[string][]string{"action": {"freeze", "thaw"}}, "InvalidParameters", "action"},
		{"Quiesce", map[string][]string{}, "InvalidParameters", "action"},
		{"Other", map[string][]string{"action": {"freeze"}}, "InvalidDocument", "Other"},
	} {
		err := send(tt.doc, tt.params)
		var msg string
		if err != nil {
			msg = err.Error()
		}
		if apiCode(err) != tt.code || !strings.Contains(msg, tt.names) {
			t.Errorf("SendCommand(%s, %v) = %v, want %s naming %s", tt.doc, tt.params, err, tt.code, tt.names)
		}
	}
	if err := send("Quiesce", map[string][]string{"action": {"freeze"}, "mounts": {"/var/lib/mysql,/var/lib/mysql-binlog"}, "timeout": {"30s"}, "runId": {"20261125T200000Z-abc123"}}); err != nil {
		t.Fatalf("valid parameters rejected: %v", err)
	}
	if err := s.WaitCommands(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if ran != 1 {
		t.Fatalf("%d commands ran, want only the valid one", ran)
	}
	if got := len(s.Commands()); got != 1 {
		t.Fatalf("%d commands stored, want 1", got)
	}
}

// OnDeleteSnapshot runs inside DeleteSnapshot after EC2's own checks; its
// error fails the call (InternalError) and keeps the snapshot.
func TestOnDeleteSnapshot(t *testing.T) {
	s := New()
	seed(s)
	var deleted []string
	fail := true
	s.OnDeleteSnapshot = func(_ context.Context, snapshotID, volumeID string) error {
		if fail {
			return errors.New("image busy")
		}
		deleted = append(deleted, snapshotID+"/"+volumeID)
		return nil
	}
	e, _ := clients(t, s)
	ctx := context.Background()
	id := s.AddSnapshot(Snapshot{VolumeID: "vol-0data1"})
	inUse := s.AddSnapshot(Snapshot{VolumeID: "vol-0data1", InUse: true})
	if _, err := e.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)}); apiCode(err) != "InternalError" {
		t.Fatalf("hook error: %v", err)
	}
	if _, ok := s.Snapshot(id); !ok {
		t.Fatal("snapshot removed although the hook failed")
	}
	fail = false
	if _, err := e.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(inUse)}); apiCode(err) != "InvalidSnapshot.InUse" {
		t.Fatalf("in use: %v", err)
	}
	if _, err := e.DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Snapshot(id); ok {
		t.Fatal("snapshot still there")
	}
	if len(deleted) != 1 || deleted[0] != id+"/vol-0data1" {
		t.Fatalf("hook calls = %v (never for the in-use one)", deleted)
	}
}

// Like EC2, a request the caller abandons while it waits (latency) is still
// processed, at its own time: a CreateSnapshot whose caller timed out
// creates its snapshot later. (The stand-in used to cut the latency short
// and process at the moment the client left, which hid a Lambda bug.)
func TestAbandonedRequestIsProcessedLater(t *testing.T) {
	s := New()
	seed(s)
	s.SetLatency("CreateSnapshot", 400*time.Millisecond)
	e, _ := clients(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := e.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: aws.String("vol-0data1")}); err == nil {
		t.Fatal("call outlived its context")
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(s.Snapshots()); n != 0 {
		t.Fatalf("%d snapshots 250ms into a 400ms latency", n)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(s.Snapshots()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(s.Snapshots()); n != 1 {
		t.Fatalf("abandoned CreateSnapshot made %d snapshots, want 1", n)
	}
}

// EC2 rejects a filter name it does not know (InvalidParameterValue) instead
// of matching nothing; a misspelt filter must fail loudly, not look like an
// empty fleet or nothing to prune.
func TestUnknownFilterIsAnError(t *testing.T) {
	s := New()
	seed(s)
	e, _ := clients(t, s)
	ctx := context.Background()
	bad := []ec2types.Filter{{Name: aws.String("tag-kee"), Values: []string{"x"}}}
	if _, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: bad}); apiCode(err) != "InvalidParameterValue" || !strings.Contains(err.Error(), "tag-kee") {
		t.Errorf("DescribeInstances with an unknown filter: %v", err)
	}
	if _, err := e.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{Filters: bad}); apiCode(err) != "InvalidParameterValue" {
		t.Errorf("DescribeSnapshots with an unknown filter: %v", err)
	}
	if _, err := e.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: bad}); apiCode(err) != "InvalidParameterValue" {
		t.Errorf("DescribeVolumes with an unknown filter: %v", err)
	}
	ok := []ec2types.Filter{{Name: aws.String("tag:quiesce:enabled"), Values: []string{"true"}}, {Name: aws.String("instance-state-name"), Values: []string{"running"}}}
	out, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: ok})
	if err != nil || len(out.Reservations) != 2 {
		t.Fatalf("known filters: %v %d", err, len(out.Reservations))
	}
}
