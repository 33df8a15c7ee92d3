// Package targets resolves the event's targets (instance IDs and/or tags)
// to the instances a run will quiesce: running in EC2 and Online in SSM,
// with per-instance overrides from their tags. Everything else is reported
// with a reason instead of silently dropped.
package targets

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/ssmrun"
)

// Override tags read from the instance.
const (
	TagMounts        = contract.InstanceTagMounts
	TagMySQLLock     = contract.InstanceTagMySQLLock
	TagFreezeTimeout = contract.InstanceTagFreezeTimeout
)

// Target is one instance to quiesce, with its effective settings.
type Target struct {
	InstanceID    string
	Name          string
	Mounts        []string
	MySQLLock     string
	FreezeTimeout time.Duration
	// RootDevice and Volumes (volume ID → device name) come from the
	// instance's block device mappings.
	RootDevice   string
	RootVolumeID string
	Volumes      map[string]string
	// VolumeOrder lists the attached volume IDs in mapping order.
	VolumeOrder []string
}

// DataVolumes returns the attached volumes other than the root volume.
func (t Target) DataVolumes() []string {
	var out []string
	for _, v := range t.VolumeOrder {
		if v != t.RootVolumeID {
			out = append(out, v)
		}
	}
	return out
}

// Excluded is an instance that will not be quiesced, and why.
type Excluded struct {
	InstanceID string
	// Failed is true when the operator asked for this instance and it
	// cannot be done (the run must fail); false means skipped.
	Failed bool
	Reason string
}

// Resolve finds the targets. IDs and tags are a union: instances listed by
// ID plus instances carrying every target tag (an empty tag value matches
// any value). Non-running instances are skipped; instances that are
// running but cannot be reached through SSM, or whose override tags are
// invalid, fail (a running database without its backup must alarm).
func Resolve(ctx context.Context, e awsapi.EC2, s awsapi.SSM, cfg *event.Config) ([]Target, []Excluded, error) {
	found := map[string]ec2types.Instance{}
	var order []string
	add := func(in ec2types.Instance) {
		id := aws.ToString(in.InstanceId)
		if _, ok := found[id]; !ok {
			order = append(order, id)
		}
		found[id] = in
	}
	var excluded []Excluded
	if len(cfg.InstanceIDs) > 0 {
		missing, err := describeIDs(ctx, e, cfg.InstanceIDs, add)
		if err != nil {
			return nil, nil, err
		}
		for _, id := range missing {
			excluded = append(excluded, Excluded{InstanceID: id, Failed: true, Reason: "instance not found in this account/region"})
		}
	}
	if len(cfg.TargetTags) > 0 {
		fs := append(TagFilters(cfg.TargetTags), ec2types.Filter{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "stopping", "stopped", "shutting-down"}})
		if err := Describe(ctx, e, fs, add); err != nil {
			return nil, nil, err
		}
	}
	listed := map[string]bool{}
	for _, id := range cfg.InstanceIDs {
		listed[id] = true
	}

	var running []string
	for _, id := range order {
		in := found[id]
		state := ""
		if in.State != nil {
			state = string(in.State.Name)
		}
		if state != "running" {
			excluded = append(excluded, Excluded{InstanceID: id, Reason: "instance state is " + state})
			continue
		}
		running = append(running, id)
	}
	ping, err := ssmrun.PingStatus(ctx, s, running)
	if err != nil {
		return nil, nil, fmt.Errorf("describe instance information: %w", err)
	}
	var out []Target
	for _, id := range running {
		p, ok := ping[id]
		switch {
		case !ok:
			excluded = append(excluded, Excluded{InstanceID: id, Failed: true, Reason: "not managed by SSM (no SSM agent registration; check the instance profile)"})
			continue
		case p != string(ssmtypes.PingStatusOnline):
			excluded = append(excluded, Excluded{InstanceID: id, Failed: true, Reason: "SSM ping status is " + p})
			continue
		}
		t, err := target(found[id], cfg)
		if err != nil {
			excluded = append(excluded, Excluded{InstanceID: id, Failed: true, Reason: err.Error()})
			continue
		}
		out = append(out, t)
	}
	return out, excluded, nil
}

// describeIDs looks instances up by ID. EC2 fails the whole call with
// InvalidInstanceID.NotFound when one ID is unknown; then each ID is looked
// up alone so the others still run and the missing ones are reported.
func describeIDs(ctx context.Context, e awsapi.EC2, ids []string, add func(ec2types.Instance)) (missing []string, err error) {
	seen := map[string]bool{}
	collect := func(in ec2types.Instance) {
		seen[aws.ToString(in.InstanceId)] = true
		add(in)
	}
	for chunk := range slices.Chunk(ids, 200) {
		err := describeInput(ctx, e, &ec2.DescribeInstancesInput{InstanceIds: chunk}, collect)
		if err == nil {
			continue
		}
		if !isNotFound(err) {
			return nil, err
		}
		for _, id := range chunk {
			if err := describeInput(ctx, e, &ec2.DescribeInstancesInput{InstanceIds: []string{id}}, collect); err != nil && !isNotFound(err) {
				return nil, err
			}
		}
	}
	for _, id := range ids {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

func isNotFound(err error) bool {
	c := awsapi.Code(err)
	return c == "InvalidInstanceID.NotFound" || c == "InvalidInstanceID.Malformed"
}

// TagFilters are the DescribeInstances filters for instances carrying every
// target tag, in key order; an empty value means "has the tag, any value".
func TagFilters(tags map[string]string) []ec2types.Filter {
	var fs []ec2types.Filter
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if v := tags[k]; v != "" {
			fs = append(fs, ec2types.Filter{Name: aws.String("tag:" + k), Values: []string{v}})
		} else {
			fs = append(fs, ec2types.Filter{Name: aws.String("tag-key"), Values: []string{k}})
		}
	}
	return fs
}

// Describe hands add every instance matching the filters, all pages of them.
func Describe(ctx context.Context, e awsapi.EC2Lookup, fs []ec2types.Filter, add func(ec2types.Instance)) error {
	return describeInput(ctx, e, &ec2.DescribeInstancesInput{Filters: fs, MaxResults: aws.Int32(1000)}, add)
}

func describeInput(ctx context.Context, e awsapi.EC2Lookup, in *ec2.DescribeInstancesInput, add func(ec2types.Instance)) error {
	for p := ec2.NewDescribeInstancesPaginator(e, in); p.HasMorePages(); {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("describe instances: %w", err)
		}
		for _, r := range out.Reservations {
			for _, i := range r.Instances {
				add(i)
			}
		}
	}
	return nil
}

func target(in ec2types.Instance, cfg *event.Config) (Target, error) {
	t := Target{InstanceID: aws.ToString(in.InstanceId), Mounts: cfg.Mounts, MySQLLock: cfg.MySQLLock, FreezeTimeout: cfg.FreezeTimeout,
		RootDevice: aws.ToString(in.RootDeviceName), Volumes: map[string]string{}}
	tags := awsapi.TagMap(in.Tags)
	t.Name = tags[contract.TagName]
	for _, bd := range in.BlockDeviceMappings {
		if bd.Ebs == nil || aws.ToString(bd.Ebs.VolumeId) == "" {
			continue
		}
		v, dev := aws.ToString(bd.Ebs.VolumeId), aws.ToString(bd.DeviceName)
		t.Volumes[v] = dev
		t.VolumeOrder = append(t.VolumeOrder, v)
		if dev == t.RootDevice {
			t.RootVolumeID = v
		}
	}
	if v, ok := tags[TagMounts]; ok {
		var mounts []string
		for _, m := range strings.Split(v, ",") {
			if m = strings.TrimSpace(m); m != "" {
				mounts = append(mounts, m)
			}
		}
		if err := event.ValidateMounts("tag "+TagMounts, mounts); err != nil {
			return t, err
		}
		t.Mounts = mounts
	}
	if v, ok := tags[TagMySQLLock]; ok {
		if err := event.ValidateLock("tag "+TagMySQLLock, v); err != nil {
			return t, err
		}
		t.MySQLLock = v
	}
	if v, ok := tags[TagFreezeTimeout]; ok {
		d, err := event.ValidateFreezeTimeout("tag "+TagFreezeTimeout, v)
		if err != nil {
			return t, err
		}
		t.FreezeTimeout = d
	}
	if len(t.Mounts) == 0 {
		return t, fmt.Errorf("no mounts to freeze: set mounts in the event, QUIESCE_MOUNTS, or tag %s on the instance", TagMounts)
	}
	return t, nil
}
