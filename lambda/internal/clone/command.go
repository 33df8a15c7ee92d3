package clone

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/ssmrun"
)

// deliveryTimeout is how long SSM may take to deliver the command.
const deliveryTimeout = 10 * time.Minute

// commandParams are the clone document's parameters.
func commandParams(cfg *Config, p *plan) map[string][]string {
	var vols, mounts []string
	for _, m := range p.members {
		vols, mounts = append(vols, m.VolumeID), append(mounts, m.Mount)
	}
	params := map[string][]string{
		"volumes": {strings.Join(vols, ",")}, "mounts": {strings.Join(mounts, ",")},
		"sourceHost": {p.sourceHost}, "sourcePort": {strconv.Itoa(p.sourcePort)},
		"replicationDefaultsFile": {cfg.ReplicationDefaultsFile}, "timeout": {cfg.timeout.String()}, "runId": {p.runID},
	}
	if p.coords.Mode == contract.CloneByGTID {
		params["sourceGtid"] = []string{p.coords.GTID}
	} else {
		params["sourceLogFile"], params["sourceLogPos"] = []string{p.coords.LogFile}, []string{strconv.FormatUint(p.coords.LogPos, 10)}
	}
	optional := map[string]string{"mysqlDefaultsFile": cfg.MySQLDefaultsFile, "startCommand": cfg.StartCommand, "stopCommand": cfg.StopCommand}
	if cfg.ServerID != 0 {
		optional["serverId"] = strconv.FormatUint(uint64(cfg.ServerID), 10)
	}
	var ids []string
	for _, id := range cfg.SourceServerIDs {
		ids = append(ids, strconv.FormatUint(uint64(id), 10))
	}
	optional["sourceServerIds"] = strings.Join(ids, ",")
	for k, v := range optional {
		if v != "" {
			params[k] = []string{v}
		}
	}
	return params
}

// runCommand sends hostagent clone once (a command already recorded on the
// volumes is followed instead) and waits for its outcome.
func (r *Runner) runCommand(ctx context.Context, cfg *Config, p *plan, res *Result) error {
	vols, err := r.cloneVolumes(ctx, cfg, p)
	if err != nil {
		return err
	}
	if len(vols) > 0 {
		res.CommandID = tagMap(vols[0].Tags)[contract.TagCloneCommand]
	}
	if res.CommandID == "" {
		// One attempt: a re-sent clone would find its volumes busy.
		id, err := ssmrun.SendOnce(ctx, r.SSM, ssmrun.Input(cfg.Document, cfg.TargetInstance, commandParams(cfg, p), deliveryTimeout,
			"quiesce clone "+p.instanceID+" "+p.runID))
		if err != nil {
			return fmt.Errorf("send the clone command to %s: %w", cfg.TargetInstance, err)
		}
		res.CommandID = id
		r.Log.Info("clone command sent", "command_id", res.CommandID, "target", cfg.TargetInstance)
		if err := r.tagVolumes(ctx, p, map[string]string{contract.TagCloneState: stateRunning, contract.TagCloneCommand: res.CommandID}); err != nil {
			return err
		}
	}
	return r.await(ctx, cfg, p, res)
}

// await polls the command until it ends and records the outcome.
func (r *Runner) await(ctx context.Context, cfg *Config, p *plan, res *Result) error {
	for {
		out, err := ssmrun.Invocation(ctx, r.SSM, res.CommandID, cfg.TargetInstance)
		switch {
		case err != nil:
			return fmt.Errorf("poll clone command %s: %w", res.CommandID, err)
		case out == nil: // not registered yet
		case outcome(out, res):
			return r.record(ctx, p, res)
		}
		if err := r.Clock.Sleep(ctx, r.Poll); err != nil {
			return fmt.Errorf("wait for clone command %s: %w", res.CommandID, err)
		}
	}
}

// outcome reads a finished invocation into res; false while it runs.
func outcome(out *ssm.GetCommandInvocationOutput, res *Result) bool {
	if ssmrun.Running(out.Status) {
		return false
	}
	stdout := aws.ToString(out.StandardOutputContent)
	res.Report = parseReport(stdout)
	if out.Status == ssmtypes.CommandInvocationStatusSuccess {
		res.Status = StatusReplicating
		return true
	}
	res.Status = StatusFailed
	switch {
	case res.Report != nil && len(res.Report.Problems) > 0:
		res.Error = res.Report.Problems[0]
	case out.Status == ssmtypes.CommandInvocationStatusFailed:
		res.Error = fmt.Sprintf("hostagent clone failed (%s): %s", contract.ExitCode(out.ResponseCode), ssmrun.ErrorOf(stdout, aws.ToString(out.StandardErrorContent)))
	default:
		res.Error = fmt.Sprintf("clone command ended %s (%s)", out.Status, aws.ToString(out.StatusDetails))
	}
	return true
}

func (r *Runner) record(ctx context.Context, p *plan, res *Result) error {
	tags := map[string]string{contract.TagCloneState: stateReplicating}
	if res.Status == StatusFailed {
		tags = map[string]string{contract.TagCloneState: stateFailed, contract.TagCloneNote: res.Error}
	}
	r.Log.Info("clone ended", "run_id", p.runID, "status", res.Status, "error", res.Error)
	return r.tagVolumes(ctx, p, tags)
}

// parseReport reads hostagent's CloneReport (nil if stdout holds none).
func parseReport(stdout string) *contract.CloneReport {
	return ssmrun.Report(stdout, func(rep *contract.CloneReport) bool { return rep.Volumes != nil })
}
