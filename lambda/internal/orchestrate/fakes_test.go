package orchestrate

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/clock"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/targets"
	"github.com/quiesce/quiesce/test/awsfake"
)

func apiErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: code} }

// scriptedSSM answers freeze and thaw with the given outputs and records
// the actions sent.
type scriptedSSM struct {
	mu      sync.Mutex
	actions []string
	freeze  *ssm.GetCommandInvocationOutput
	thaw    *ssm.GetCommandInvocationOutput
}

func (s *scriptedSSM) fake() *awsfake.SSM {
	return &awsfake.SSM{
		OnSendCommand: func(ctx context.Context, in *ssm.SendCommandInput) (*ssm.SendCommandOutput, error) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			a := in.Parameters["action"][0]
			s.actions = append(s.actions, a)
			return &ssm.SendCommandOutput{Command: &ssmtypes.Command{CommandId: aws.String(a)}}, nil
		},
		OnGetCommandInvocation: func(ctx context.Context, in *ssm.GetCommandInvocationInput) (*ssm.GetCommandInvocationOutput, error) {
			if aws.ToString(in.CommandId) == "freeze" {
				return s.freeze, nil
			}
			return s.thaw, nil
		},
	}
}

func (s *scriptedSSM) sent() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.actions, ",")
}

func jsonOut(status ssmtypes.CommandInvocationStatus, code contract.ExitCode, v any) *ssm.GetCommandInvocationOutput {
	b, _ := json.Marshal(v)
	return &ssm.GetCommandInvocationOutput{Status: status, ResponseCode: int32(code), StandardOutputContent: aws.String(string(b))}
}

func unitSetup(t *testing.T, e *awsfake.EC2, s *scriptedSSM) (*Runner, *event.Config, targets.Target) {
	t.Helper()
	if e.OnDescribeSnapshots == nil {
		// The end-of-run look for a late snapshot of an abandoned call finds none.
		e.OnDescribeSnapshots = func(context.Context, *ec2.DescribeSnapshotsInput) (*ec2.DescribeSnapshotsOutput, error) {
			return &ec2.DescribeSnapshotsOutput{}, nil
		}
	}
	r := NewRunner(e, s.fake(), clock.Real{}, nil, nil)
	r.ThawWait = 2 * time.Second
	r.MinStartBudget = 100 * time.Millisecond
	r.ThawReserve = 200 * time.Millisecond
	cfg := &event.Config{RunID: "run-1", Document: "Quiesce", Stack: "s", FreezeRequest: contract.FreezeRequest{MySQLLock: "auto", LockWait: time.Second, LongQueryLimit: time.Second}, FreezeTimeout: 5 * time.Second}
	tg := targets.Target{InstanceID: "i-1", Mounts: []string{"/a", "/b"}, MySQLLock: "auto", FreezeTimeout: 5 * time.Second, RootDevice: "/dev/xvda", RootVolumeID: "vol-r",
		Volumes: map[string]string{"vol-r": "/dev/xvda", "vol-a": "/dev/sdf", "vol-b": "/dev/sdg"}, VolumeOrder: []string{"vol-r", "vol-a", "vol-b"}}
	s.freeze = jsonOut(ssmtypes.CommandInvocationStatusSuccess, 0, contract.FreezeReport{RunID: "run-1", FrozenAt: time.Now(), Deadline: time.Now().Add(5 * time.Second), Lock: contract.LockInfo{Mode: "ftwrl"},
		Mounts: []contract.MountReport{{Path: "/a", VolumeIDs: []string{"vol-a"}}, {Path: "/b", VolumeIDs: []string{"vol-b"}}}})
	if s.thaw == nil {
		s.thaw = jsonOut(ssmtypes.CommandInvocationStatusSuccess, 0, contract.ThawReport{RunID: "run-1", ThawedBy: contract.ThawedByCommand, ThawedAt: time.Now()})
	}
	return r, cfg, tg
}

func snapsOut(vols ...string) *ec2.CreateSnapshotsOutput {
	out := &ec2.CreateSnapshotsOutput{}
	for _, v := range vols {
		out.Snapshots = append(out.Snapshots, ec2types.SnapshotInfo{SnapshotId: aws.String("snap-" + v), VolumeId: aws.String(v)})
	}
	return out
}

func TestPollScheduleIsAdaptive(t *testing.T) {
	var mu sync.Mutex
	var at []time.Duration
	start := time.Now()
	n := 0
	f := &awsfake.SSM{OnGetCommandInvocation: func(ctx context.Context, in *ssm.GetCommandInvocationInput) (*ssm.GetCommandInvocationOutput, error) {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Since(start))
		n++
		switch {
		case n <= 2:
			return nil, &ssmtypes.InvocationDoesNotExist{Message: aws.String("not yet")}
		case n <= 4:
			return &ssm.GetCommandInvocationOutput{Status: ssmtypes.CommandInvocationStatusInProgress}, nil
		}
		return &ssm.GetCommandInvocationOutput{Status: ssmtypes.CommandInvocationStatusSuccess}, nil
	}}
	r := NewRunner(&awsfake.EC2{}, f, clock.Real{}, nil, nil)
	out, err := r.wait(context.Background(), "c", "i", start, start.Add(5*time.Second))
	if err != nil || out.Status != ssmtypes.CommandInvocationStatusSuccess || n != 5 {
		t.Fatalf("out=%v err=%v polls=%d", out, err, n)
	}
	// Lower bounds are exact (timers never fire early); upper bounds leave
	// room for a loaded CI machine but still tell 30 ms from 250 ms.
	if at[0] < 100*time.Millisecond || at[0] > 300*time.Millisecond {
		t.Fatalf("first poll after %v, want ~100ms", at[0])
	}
	var total time.Duration
	for i := 1; i < len(at); i++ {
		gap := at[i] - at[i-1]
		if gap < 30*time.Millisecond {
			t.Fatalf("poll %d gap %v, below the hot interval", i, gap)
		}
		total += gap
	}
	if mean := total / time.Duration(len(at)-1); mean > 120*time.Millisecond {
		t.Fatalf("mean poll gap %v, want the hot interval ~30ms", mean)
	}
	// Nothing ever: outcome unknown at `until`, not later.
	f.OnGetCommandInvocation = func(context.Context, *ssm.GetCommandInvocationInput) (*ssm.GetCommandInvocationOutput, error) {
		return &ssm.GetCommandInvocationOutput{Status: ssmtypes.CommandInvocationStatusPending}, nil
	}
	begin := time.Now()
	_, err = r.wait(context.Background(), "c", "i", begin, begin.Add(600*time.Millisecond))
	if !errors.Is(err, ErrOutcomeUnknown) || time.Since(begin) > 1200*time.Millisecond {
		t.Fatalf("err=%v after %v", err, time.Since(begin))
	}
}

func TestDowngradeFailureIsReportedLoudly(t *testing.T) {
	s := &scriptedSSM{thaw: jsonOut(ssmtypes.CommandInvocationStatusSuccess, contract.ExitOK, contract.ThawReport{RunID: "run-1", ThawedBy: contract.ThawedByRecovery})}
	e := &awsfake.EC2{
		OnCreateSnapshots: func(ctx context.Context, in *ec2.CreateSnapshotsInput) (*ec2.CreateSnapshotsOutput, error) {
			return snapsOut("vol-a", "vol-b"), nil
		},
		OnCreateTags: func(ctx context.Context, in *ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
			return nil, apiErr("UnauthorizedOperation")
		},
	}
	r, cfg, tg := unitSetup(t, e, s)
	res, _ := r.Cycle(context.Background(), cfg, tg)
	if res.Status != StatusFailed || !strings.Contains(res.Reason, "could not re-tag") || res.Consistency != Crash {
		t.Fatalf("result = %+v", res)
	}
	for _, sn := range res.Snapshots {
		if !strings.Contains(sn.Consistency, "re-tag to crash failed") {
			t.Fatalf("snapshot result hides the failed downgrade: %+v", sn)
		}
	}
	if s.sent() != "freeze,thaw" {
		t.Fatalf("sent %s", s.sent())
	}
}

func TestCreateSnapshotsWrongVolumeSet(t *testing.T) {
	s := &scriptedSSM{}
	var tagged []map[string]string
	e := &awsfake.EC2{
		OnCreateSnapshots: func(ctx context.Context, in *ec2.CreateSnapshotsInput) (*ec2.CreateSnapshotsOutput, error) {
			if !aws.ToBool(in.InstanceSpecification.ExcludeBootVolume) || len(in.InstanceSpecification.ExcludeDataVolumeIds) != 0 {
				t.Errorf("spec = %+v", in.InstanceSpecification)
			}
			return snapsOut("vol-a"), nil // vol-b missing
		},
		OnCreateTags: func(ctx context.Context, in *ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
			tagged = append(tagged, awsapi.TagMap(in.Tags))
			return &ec2.CreateTagsOutput{}, nil
		},
	}
	r, cfg, tg := unitSetup(t, e, s)
	res, _ := r.Cycle(context.Background(), cfg, tg)
	if res.Status != StatusFailed || !strings.Contains(res.Reason, "different volume set") {
		t.Fatalf("result = %+v", res)
	}
	if len(tagged) != 1 || tagged[0][contract.TagConsistency] != Crash || tagged[0][contract.TagIncomplete] != "true" || tagged[0][contract.TagDevice] != "/dev/sdf" {
		t.Fatalf("tags = %v", tagged)
	}
}

func TestThawSurvivesCancelledInvocation(t *testing.T) {
	s := &scriptedSSM{}
	e := &awsfake.EC2{
		OnCreateSnapshots: func(ctx context.Context, in *ec2.CreateSnapshotsInput) (*ec2.CreateSnapshotsOutput, error) {
			<-ctx.Done() // hangs until the invocation's deadline cuts it
			return nil, ctx.Err()
		},
		OnCreateTags: func(ctx context.Context, in *ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
			return &ec2.CreateTagsOutput{}, nil
		},
	}
	r, cfg, tg := unitSetup(t, e, s)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	res, _ := r.Cycle(ctx, cfg, tg)
	if s.sent() != "freeze,thaw" || !res.ThawSent || res.Status != StatusFailed {
		t.Fatalf("sent=%s result=%+v", s.sent(), res)
	}
}

func TestRetryNeverPassesDeadline(t *testing.T) {
	r := NewRunner(&awsfake.EC2{}, &awsfake.SSM{}, clock.Real{}, nil, nil)
	calls := 0
	start := time.Now()
	until := start.Add(400 * time.Millisecond)
	err := r.retry(context.Background(), until, throttleRetry, func(ctx context.Context) error {
		calls++
		if dl, ok := ctx.Deadline(); !ok || dl.After(until.Add(5*time.Millisecond)) {
			t.Errorf("attempt context deadline %v after %v", dl, until)
		}
		return apiErr("RequestLimitExceeded")
	})
	if err == nil || time.Now().After(until.Add(200*time.Millisecond)) || calls < 2 {
		t.Fatalf("err=%v calls=%d elapsed=%v", err, calls, time.Since(start))
	}
	calls = 0
	err = r.retry(context.Background(), until, retryPolicy{base: 10 * time.Millisecond, cap: 20 * time.Millisecond, throttleOnly: true}, func(ctx context.Context) error {
		calls++
		return apiErr("InternalError")
	})
	if err == nil || calls != 1 {
		t.Fatalf("throttleOnly retried a 5xx: calls=%d", calls)
	}
}

func TestNoBlockDeviceMappingsFallsBackToPerVolume(t *testing.T) {
	s := &scriptedSSM{}
	var mu sync.Mutex
	devices := map[string]string{}
	e := &awsfake.EC2{
		OnCreateSnapshots: func(ctx context.Context, in *ec2.CreateSnapshotsInput) (*ec2.CreateSnapshotsOutput, error) {
			t.Error("CreateSnapshots without the instance's volume list")
			return nil, apiErr("InvalidParameterValue")
		},
		OnCreateSnapshot: func(ctx context.Context, in *ec2.CreateSnapshotInput) (*ec2.CreateSnapshotOutput, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, tg := range in.TagSpecifications[0].Tags {
				if aws.ToString(tg.Key) == contract.TagDevice {
					devices[aws.ToString(in.VolumeId)] = aws.ToString(tg.Value)
				}
			}
			return &ec2.CreateSnapshotOutput{SnapshotId: aws.String("snap-" + aws.ToString(in.VolumeId)), VolumeId: in.VolumeId}, nil
		},
	}
	r, cfg, tg := unitSetup(t, e, s)
	tg.Volumes, tg.VolumeOrder, tg.RootVolumeID = nil, nil, ""
	s.freeze = jsonOut(ssmtypes.CommandInvocationStatusSuccess, 0, contract.FreezeReport{RunID: "run-1", Lock: contract.LockInfo{Mode: "ftwrl"},
		Mounts: []contract.MountReport{{Path: "/a", Device: "/dev/nvme1n1", VolumeIDs: []string{"vol-a"}}, {Path: "/b", Device: "/dev/nvme2n1", VolumeIDs: []string{"vol-b"}}}})
	res, _ := r.Cycle(context.Background(), cfg, tg)
	if res.Status != StatusOK || res.SnapshotAPI != APICreateSnapshot || devices["vol-a"] != "/dev/nvme1n1" || devices["vol-b"] != "/dev/nvme2n1" {
		t.Fatalf("result = %+v devices = %v", res, devices)
	}
}

func TestMountThawErrorFailsTheInstance(t *testing.T) {
	s := &scriptedSSM{thaw: jsonOut(ssmtypes.CommandInvocationStatusSuccess, 0, contract.ThawReport{RunID: "run-1", ThawedBy: contract.ThawedByCommand,
		Mounts: []contract.MountThaw{{Path: "/a", Thawed: true}, {Path: "/b", Thawed: false, Error: "FITHAW: input/output error"}}})}
	e := &awsfake.EC2{
		OnCreateSnapshots: func(ctx context.Context, in *ec2.CreateSnapshotsInput) (*ec2.CreateSnapshotsOutput, error) {
			return snapsOut("vol-a", "vol-b"), nil
		},
		OnCreateTags: func(ctx context.Context, in *ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
			return &ec2.CreateTagsOutput{}, nil
		},
	}
	r, cfg, tg := unitSetup(t, e, s)
	res, _ := r.Cycle(context.Background(), cfg, tg)
	if res.Status != StatusFailed || !strings.Contains(res.Reason, "thaw of /b failed") {
		t.Fatalf("result = %+v", res)
	}
}

func TestVolumesOfXenDevices(t *testing.T) {
	tg := targets.Target{InstanceID: "i-1", Volumes: map[string]string{"vol-root": "/dev/sda1", "vol-data": "/dev/sdf", "vol-log": "xvdg"}}
	tests := []struct {
		name    string
		devices []string
		want    []string
		wantErr string
	}{
		{"sd name", []string{"/dev/sdf"}, []string{"vol-data"}, ""},
		{"xvd name maps to sd", []string{"/dev/xvdf"}, []string{"vol-data"}, ""},
		{"mapping itself named xvd", []string{"/dev/sdg"}, []string{"vol-log"}, ""},
		{"two devices (md)", []string{"/dev/sdf", "/dev/sdg"}, []string{"vol-data", "vol-log"}, ""},
		{"unknown device", []string{"/dev/sdz"}, nil, "no block device mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := &contract.FreezeReport{Mounts: []contract.MountReport{{Path: "/var/lib/mysql", Device: "/dev/xvdf", EC2Devices: tt.devices}}}
			vols, _, err := volumesOf(fr, tg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || strings.Join(vols, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("vols = %v, err = %v; want %v", vols, err, tt.want)
			}
		})
	}
}
