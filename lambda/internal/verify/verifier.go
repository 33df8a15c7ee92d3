package verify

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/ssmrun"
	"github.com/quiesce/quiesce/lambda/internal/volumeset"
)

// findVerifier returns the first (by ID) running verifier online in SSM.
func (r *Runner) findVerifier(ctx context.Context, cfg *Config) (*volumeset.Instance, error) {
	out, err := r.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
		volumeset.TagFilter(contract.InstanceTagRole, cfg.VerifierTag),
		{Name: aws.String("instance-state-name"), Values: []string{"running"}},
	}})
	if err != nil {
		return nil, fmt.Errorf("find verifier instances: %w", err)
	}
	byID := map[string]*volumeset.Instance{}
	for _, res := range out.Reservations {
		for _, inst := range res.Instances {
			if v := volumeset.InstanceOf(inst); v.AZ != "" {
				byID[v.ID] = v
			}
		}
	}
	none := fmt.Errorf("%w: no running instance tagged %s=%s is online in SSM (README \"Verify restores\")", ErrNoVerifier, contract.InstanceTagRole, cfg.VerifierTag)
	if len(byID) == 0 {
		return nil, none
	}
	ping, err := r.pingStatus(ctx, slices.Sorted(maps.Keys(byID)))
	if err != nil {
		return nil, err
	}
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		if ping[id] == string(ssmtypes.PingStatusOnline) {
			return byID[id], nil
		}
	}
	return nil, none
}

func (r *Runner) pingStatus(ctx context.Context, ids []string) (map[string]string, error) {
	ping, err := ssmrun.PingStatus(ctx, r.SSM, ids)
	if err != nil {
		return nil, fmt.Errorf("SSM status of verifiers %s: %w", strings.Join(ids, ","), err)
	}
	return ping, nil
}

// describeVerifier returns the job's verifier as EC2 sees it now (nil: gone).
func (r *Runner) describeVerifier(ctx context.Context, id string) (*volumeset.Instance, error) {
	v, err := volumeset.DescribeInstance(ctx, r.EC2, id)
	if err != nil {
		return nil, fmt.Errorf("describe verifier %s: %w", id, err)
	}
	return v, nil
}

// checkVerifier fails a verification in progress whose verifier is gone or
// no longer running: nothing will ever answer, so its volumes go now.
func (r *Runner) checkVerifier(ctx context.Context, j *job) {
	if j.result != "" || j.verifier == "" {
		return
	}
	v, err := r.describeVerifier(ctx, j.verifier)
	switch {
	case err != nil:
		r.Log.Warn("cannot check the verifier; trying again later", "verifier", j.verifier, "error", err)
	case v == nil:
		j.fail("verifier "+j.verifier+" no longer exists", true)
	case v.State != string(ec2types.InstanceStateNameRunning):
		j.fail("verifier "+j.verifier+" is "+v.State, true)
	}
}

// attachPoints are the device names the action attaches at (EC2's
// recommended range for EBS data volumes on Linux).
var attachPoints = func() []string {
	var out []string
	for c := 'f'; c <= 'p'; c++ {
		out = append(out, "/dev/sd"+string(c))
	}
	return out
}()

// freeDevices returns the attachment points the verifier does not use;
// /dev/xvdX and /dev/sdX are one attachment point to EC2.
func freeDevices(used []string) []string {
	taken := map[string]bool{}
	for _, d := range used {
		taken[volumeset.AttachPoint(d)] = true
	}
	var out []string
	for _, d := range attachPoints {
		if !taken[d] {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}
