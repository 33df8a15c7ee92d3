package targets

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/lambda/internal/event"
)

// fakeAWS answers the two lookups Resolve makes, EC2's DescribeInstances and
// SSM's DescribeInstanceInformation, and counts them.
type fakeAWS struct {
	awsapi.EC2 // nil: a call the tests do not make panics
	awsapi.SSM
	describe func(in *ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error)
	info     func(in *ssm.DescribeInstanceInformationInput) (*ssm.DescribeInstanceInformationOutput, error)

	describeCalls, infoCalls int
}

func (f *fakeAWS) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.describeCalls++
	return f.describe(in)
}

func (f *fakeAWS) DescribeInstanceInformation(_ context.Context, in *ssm.DescribeInstanceInformationInput, _ ...func(*ssm.Options)) (*ssm.DescribeInstanceInformationOutput, error) {
	f.infoCalls++
	return f.info(in)
}

func instance(id, state string, tags ...string) ec2types.Instance {
	in := ec2types.Instance{InstanceId: aws.String(id), State: &ec2types.InstanceState{Name: ec2types.InstanceStateName(state)}, RootDeviceName: aws.String("/dev/xvda"),
		BlockDeviceMappings: []ec2types.InstanceBlockDeviceMapping{
			{DeviceName: aws.String("/dev/xvda"), Ebs: &ec2types.EbsInstanceBlockDevice{VolumeId: aws.String("vol-r" + id)}},
			{DeviceName: aws.String("/dev/sdf"), Ebs: &ec2types.EbsInstanceBlockDevice{VolumeId: aws.String("vol-d" + id)}},
		}}
	for i := 0; i+1 < len(tags); i += 2 {
		in.Tags = append(in.Tags, ec2types.Tag{Key: aws.String(tags[i]), Value: aws.String(tags[i+1])})
	}
	return in
}

func TestResolvePaginatesChunksAndOverrides(t *testing.T) {
	var all []ec2types.Instance
	for i := 0; i < 120; i++ {
		all = append(all, instance(fmt.Sprintf("i-%017x", i), "running"))
	}
	all[3] = instance(aws.ToString(all[3].InstanceId), "running", "quiesce:mounts", "/srv/db, /srv/log", "quiesce:mysql-lock", "backup-stage", "quiesce:freeze-timeout", "45s", "Name", "db3")
	all[4] = instance(aws.ToString(all[4].InstanceId), "running", "quiesce:freeze-timeout", "forever")
	all[5] = instance(aws.ToString(all[5].InstanceId), "stopped")
	all[9] = instance(aws.ToString(all[9].InstanceId), "running", "quiesce:mysql-lock", "replica")
	all[10] = instance(aws.ToString(all[10].InstanceId), "running", "quiesce:mysql-lock", "global")
	f := &fakeAWS{}
	f.describe = func(in *ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
		if len(in.InstanceIds) > 0 {
			t.Fatal("tag query sent instance IDs")
		}
		start := 0
		if in.NextToken != nil {
			fmt.Sscan(*in.NextToken, &start)
		}
		end := min(start+50, len(all))
		out := &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{{Instances: all[start:end]}}}
		if end < len(all) {
			out.NextToken = aws.String(fmt.Sprint(end))
		}
		return out, nil
	}
	f.info = func(in *ssm.DescribeInstanceInformationInput) (*ssm.DescribeInstanceInformationOutput, error) {
		ids := in.Filters[0].Values
		if len(ids) > 50 {
			t.Fatalf("%d IDs in one DescribeInstanceInformation", len(ids))
		}
		out := &ssm.DescribeInstanceInformationOutput{}
		for _, id := range ids {
			if id == aws.ToString(all[7].InstanceId) {
				continue // not managed
			}
			st := ssmtypes.PingStatusOnline
			if id == aws.ToString(all[8].InstanceId) {
				st = ssmtypes.PingStatusInactive
			}
			out.InstanceInformationList = append(out.InstanceInformationList, ssmtypes.InstanceInformation{InstanceId: aws.String(id), PingStatus: st})
		}
		return out, nil
	}
	cfg := &event.Config{TargetTags: map[string]string{"quiesce:enabled": "true"}, FreezeRequest: contract.FreezeRequest{Mounts: []string{"/var/lib/mysql"}, MySQLLock: "auto"}, FreezeTimeout: 30 * time.Second}
	got, excluded, err := Resolve(context.Background(), f, f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if f.describeCalls != 3 || f.infoCalls != 3 {
		t.Fatalf("DescribeInstances calls %d (want 3 pages), DescribeInstanceInformation calls %d (want 3 chunks)", f.describeCalls, f.infoCalls)
	}
	if len(got) != 115 {
		t.Fatalf("targets = %d, want 115", len(got))
	}
	reasons := map[string]string{}
	for _, x := range excluded {
		reasons[x.InstanceID] = fmt.Sprintf("%v %s", x.Failed, x.Reason)
	}
	for i, want := range map[int]string{4: `true tag quiesce:freeze-timeout "forever"`, 10: `true tag quiesce:mysql-lock "global"`, 5: "false instance state is stopped", 7: "true not managed by SSM", 8: "true SSM ping status is Inactive"} {
		if r := reasons[aws.ToString(all[i].InstanceId)]; !strings.HasPrefix(r, want) {
			t.Errorf("instance %d: %q, want %q", i, r, want)
		}
	}
	var t3, t9 Target
	for _, tg := range got {
		switch tg.InstanceID {
		case aws.ToString(all[3].InstanceId):
			t3 = tg
		case aws.ToString(all[9].InstanceId):
			t9 = tg
		}
	}
	if t9.MySQLLock != "replica" {
		t.Errorf("tag quiesce:mysql-lock=replica: target lock %q", t9.MySQLLock)
	}
	if strings.Join(t3.Mounts, ",") != "/srv/db,/srv/log" || t3.MySQLLock != "backup-stage" || t3.FreezeTimeout != 45*time.Second || t3.Name != "db3" ||
		t3.RootVolumeID != "vol-r"+t3.InstanceID || strings.Join(t3.DataVolumes(), ",") != "vol-d"+t3.InstanceID || t3.Volumes["vol-d"+t3.InstanceID] != "/dev/sdf" {
		t.Fatalf("target with overrides = %+v", t3)
	}
}

func TestResolveByIDFallsBackPerIDOnNotFound(t *testing.T) {
	known := map[string]ec2types.Instance{"i-00000000000000001": instance("i-00000000000000001", "running"), "i-00000000000000002": instance("i-00000000000000002", "running")}
	f := &fakeAWS{}
	f.describe = func(in *ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
		if in.MaxResults != nil {
			t.Fatal("MaxResults with InstanceIds (EC2 rejects the combination)")
		}
		out := &ec2.DescribeInstancesOutput{}
		for _, id := range in.InstanceIds {
			in, ok := known[id]
			if !ok {
				return nil, &smithy.GenericAPIError{Code: "InvalidInstanceID.NotFound", Message: "The instance ID '" + id + "' does not exist"}
			}
			out.Reservations = append(out.Reservations, ec2types.Reservation{Instances: []ec2types.Instance{in}})
		}
		return out, nil
	}
	f.info = func(in *ssm.DescribeInstanceInformationInput) (*ssm.DescribeInstanceInformationOutput, error) {
		out := &ssm.DescribeInstanceInformationOutput{}
		for _, id := range in.Filters[0].Values {
			out.InstanceInformationList = append(out.InstanceInformationList, ssmtypes.InstanceInformation{InstanceId: aws.String(id), PingStatus: ssmtypes.PingStatusOnline})
		}
		return out, nil
	}
	cfg := &event.Config{InstanceIDs: []string{"i-00000000000000001", "i-0000000000000dead", "i-00000000000000002"}, FreezeRequest: contract.FreezeRequest{Mounts: []string{"/data"}, MySQLLock: "auto"}, FreezeTimeout: 30 * time.Second}
	got, excluded, err := Resolve(context.Background(), f, f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(excluded) != 1 || excluded[0].InstanceID != "i-0000000000000dead" || !excluded[0].Failed {
		t.Fatalf("targets %+v excluded %+v", got, excluded)
	}
	// A throttled or broken API is an error of the run, not a missing instance.
	f.describe = func(in *ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
		return nil, &smithy.GenericAPIError{Code: "UnauthorizedOperation"}
	}
	if _, _, err := Resolve(context.Background(), f, f, cfg); err == nil || !strings.Contains(err.Error(), "UnauthorizedOperation") {
		t.Fatalf("err = %v", err)
	}
}
