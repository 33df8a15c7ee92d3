package verify

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/metrics"
	"github.com/quiesce/quiesce/lambda/internal/ssmrun"
)

// hostagent verify's exit codes the action tells apart.
const (
	exitVerifyFailed = 6
	exitBusy         = 3
)

// hostagentMargin: hostagent's own --timeout ends this long before
// VerifyMaxHours, so it reports (and releases the volumes) before the
// Lambda gives up on it.
const hostagentMargin = 10 * time.Minute

// commandParams are the verify document's parameters for the job.
func (r *Runner) commandParams(cfg *Config, j *job) map[string][]string {
	left := cfg.MaxDuration - r.Clock.Now().Sub(j.started) - hostagentMargin
	if left < time.Minute {
		left = time.Minute
	}
	p := map[string][]string{
		"volumes": {strings.Join(j.volumeIDs(), ",")},
		"timeout": {strconv.Itoa(int(left.Round(time.Minute).Minutes())) + "m"},
		"runId":   {j.set.RunID},
	}
	t := tagMap(j.set.Snapshots[0].Tags)
	if positionExact(t[contract.TagLock]) {
		if t[contract.TagBinlogFile] != "" && t[contract.TagBinlogPos] != "" {
			p["expectBinlogFile"], p["expectBinlogPos"] = []string{t[contract.TagBinlogFile]}, []string{t[contract.TagBinlogPos]}
		}
		// A GTID set cut to fit a tag value is not the position; leave it out.
		if g := t[contract.TagGTID]; g != "" && !strings.Contains(g, "truncated") {
			p["expectGtid"] = []string{g}
		}
	}
	for name, v := range r.restoreParams(j, t[contract.TagRestore]) {
		p[name] = []string{v}
	}
	for name, v := range map[string]string{"checkSql": cfg.CheckSQL, "mysqld": cfg.Mysqld, "mysqldOptionsFile": cfg.MysqldOptionsFile} {
		if v != "" {
			p[name] = []string{v}
		}
	}
	return p
}

// positionExact says whether the binlog position and GTID state tagged
// under a lock mode are exactly those of the data, so that verify may
// demand them (the binlog file's size equal to the position):
//   - ftwrl and backup-stage block every commit from before the position is
//     read until after the thaw;
//   - replica stops the applier and requires read_only, so the replica's
//     own binlog and GTID state stand still from the reading to the freeze.
//     It assumes no client writes that read_only lets through (README "Lock
//     modes"); if one did, the tags do not describe the data, and a
//     mismatch is what verify should report;
//   - instance blocks DDL but not commits (the position is a lower bound),
//     none locks nothing, and a set without quiesce:lock says nothing.
func positionExact(lock string) bool {
	switch lock {
	case contract.LockFTWRL, contract.LockBackupStage, contract.LockReplica:
		return true
	}
	return false
}

// restoreParams are the source server's settings from the set's
// quiesce:restore tag, as the verify document's parameters: without them
// hostagent verify would guess (the one datadir it finds, the default page
// size), and a server with innodb_page_size=4096 would not start. A field
// the tag had to leave out (cut) is left to hostagent to find; an
// unreadable tag is logged and sends nothing.
func (r *Runner) restoreParams(j *job, tag string) map[string]string {
	if tag == "" {
		return nil
	}
	rt, err := contract.ParseRestoreTag(tag)
	if err != nil {
		r.Log.Warn("restore settings tag unreadable; hostagent verify finds the datadir and uses the defaults", "run_id", j.set.RunID, "error", err)
		return nil
	}
	p := map[string]string{"datadirRelative": rt.DataDir, "binlogBasename": rt.BinlogBasename,
		"innodbLogGroupHomeDir": rt.LogGroupHomeDir, "innodbDataFilePath": rt.DataFilePath}
	if rt.PageSize > 0 {
		p["innodbPageSize"] = strconv.FormatUint(rt.PageSize, 10)
	}
	if rt.LowerCaseTableNames != nil {
		p["lowerCaseTableNames"] = strconv.Itoa(*rt.LowerCaseTableNames)
	}
	for k, v := range p {
		if v == "" {
			delete(p, k)
		}
	}
	return p
}

// send runs hostagent verify on the verifier once every volume is attached.
func (r *Runner) send(ctx context.Context, cfg *Config, j *job) (bool, error) {
	if len(j.set.Snapshots) == 0 {
		j.fail("no snapshot to verify", true)
		return true, nil
	}
	if err := r.refreshVolumes(ctx, cfg, j); err != nil {
		return false, err
	}
	ready, missing := j.attachedAll()
	if missing {
		j.state = StateCreating // re-create or re-attach what went
		return true, r.tagVolumes(ctx, j, map[string]string{contract.TagVerifyState: StateCreating})
	}
	if !ready || r.Clock.Now().Before(j.notBefore) {
		return false, nil
	}
	ping, err := r.pingStatus(ctx, []string{j.verifier})
	if err != nil {
		return false, err
	}
	if ping[j.verifier] != string(ssmtypes.PingStatusOnline) {
		r.Log.Warn("verifier not online in SSM; waiting (bounded by VerifyMaxHours)", "verifier", j.verifier, "ping", ping[j.verifier])
		return false, nil
	}
	// One attempt: a re-sent command would find hostagent busy; a lost
	// response is retried by the next step and answered "busy" at worst.
	id, err := ssmrun.SendOnce(ctx, r.SSM, ssmrun.Input(cfg.Document, j.verifier, r.commandParams(cfg, j), r.DeliveryTimeout,
		"quiesce verify "+j.set.InstanceID+" "+j.set.RunID))
	if awsapi.Code(err) == "InvalidParameters" {
		// A tag value of the set the document does not accept: no retry
		// changes that.
		j.fail("the verify document refused the parameters: "+err.Error(), false)
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("send the verify command to %s: %w", j.verifier, err)
	}
	j.commandID, j.sent, j.state = id, r.Clock.Now().UTC().Truncate(time.Second), StateRunning
	r.Log.Info("verify command sent", "command_id", j.commandID, "verifier", j.verifier, "volumes", j.volumeIDs())
	return true, r.tagVolumes(ctx, j, map[string]string{contract.TagVerifyState: StateRunning, contract.TagVerifyCommand: j.commandID, contract.TagVerifySent: j.sent.Format(timeFormat)})
}

// poll looks at the command once and records its outcome when it ended.
func (r *Runner) poll(ctx context.Context, j *job) (bool, error) {
	out, err := ssmrun.Invocation(ctx, r.SSM, j.commandID, j.verifier)
	if err != nil {
		return false, fmt.Errorf("poll verify command %s: %w", j.commandID, err)
	}
	if out == nil {
		if r.Clock.Now().Sub(j.sent) > r.LostAfter {
			j.fail(fmt.Sprintf("verify command %s lost: SSM has no invocation on %s %s after it was sent", j.commandID, j.verifier, event.HumanDuration(r.LostAfter)), true)
			return true, nil
		}
		return false, nil
	}
	switch {
	case ssmrun.Running(out.Status):
		return false, nil
	case out.Status == ssmtypes.CommandInvocationStatusSuccess:
		j.report = parseReport(aws.ToString(out.StandardOutputContent))
		j.result = contract.VerifiedOK
		return true, nil
	case out.Status == ssmtypes.CommandInvocationStatusFailed:
		return r.failedCommand(ctx, j, out)
	}
	j.fail(fmt.Sprintf("verify command %s ended %s (%s)", j.commandID, out.Status, aws.ToString(out.StatusDetails)), true)
	return true, nil
}

// failedCommand sorts a non-zero exit: 6 is the set's failure, 3 (busy)
// means "try again", anything else means the check could not run.
func (r *Runner) failedCommand(ctx context.Context, j *job, out *ssm.GetCommandInvocationOutput) (bool, error) {
	stdout := aws.ToString(out.StandardOutputContent)
	switch code := out.ResponseCode; code {
	case exitVerifyFailed:
		j.report = parseReport(stdout)
		note := "verification failed (report unreadable)"
		if j.report != nil && len(j.report.Problems) > 0 {
			note = j.report.Problems[0]
		}
		j.fail(note, false)
	case exitBusy:
		r.Log.Warn("verifier busy; sending again later", "verifier", j.verifier, "command_id", j.commandID)
		j.state, j.commandID, j.notBefore = StateAttached, "", r.Clock.Now().Add(r.BusyRetry)
		return false, r.tagVolumes(ctx, j, map[string]string{contract.TagVerifyState: StateAttached, contract.TagVerifyCommand: ""})
	default:
		why := ssmrun.ErrorOf(stdout, aws.ToString(out.StandardErrorContent))
		j.fail(fmt.Sprintf("verifier could not run the check (exit %d): %s", code, why), false)
	}
	return true, nil
}

// parseReport reads hostagent's VerifyReport (nil if stdout holds none, e.g.
// cut by SSM's 24,000-character output limit).
func parseReport(stdout string) *contract.VerifyReport {
	return ssmrun.Report(stdout, func(rep *contract.VerifyReport) bool { return rep.Volumes != nil })
}

// recordOutcome puts the outcome on the volumes (so a later invocation
// knows it), then on the source snapshots, and emits the metrics.
func (r *Runner) recordOutcome(ctx context.Context, cfg *Config, j *job) error {
	j.ended = r.Clock.Now().UTC().Truncate(time.Second)
	tags := map[string]string{contract.TagVerifyState: StateCleanup, contract.TagVerifyResult: j.result, contract.TagVerifyEnded: j.ended.Format(timeFormat)}
	if j.result == contract.VerifiedFailed {
		tags[contract.TagVerifyNote] = j.note
	}
	if j.force {
		tags[contract.TagVerifyForce] = "true"
	}
	if err := r.tagVolumes(ctx, j, tags); err != nil {
		return err
	}
	j.state = StateCleanup
	r.Log.Info("verification ended", "instance", j.set.InstanceID, "run_id", j.set.RunID, "result", j.result, "note", j.note)
	r.emit(j)
	return r.tagSnapshots(ctx, j)
}

// tagSnapshots writes quiesce:verified (and the note of a failure) on the set.
func (r *Runner) tagSnapshots(ctx context.Context, j *job) error {
	tags := map[string]string{contract.TagVerified: j.result, contract.TagVerifiedAt: j.ended.Format(timeFormat)}
	if j.result == contract.VerifiedFailed {
		tags[contract.TagVerifyNote] = j.note
	}
	var ids []string
	for _, id := range j.set.IDs() {
		if id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		j.snapTagged = true
		return nil
	}
	_, err := r.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: ids, Tags: ec2Tags(tags)})
	if err != nil && awsapi.Code(err) != "InvalidSnapshot.NotFound" {
		return fmt.Errorf("tag the verified snapshots %v: %w", j.set.IDs(), err)
	}
	j.snapTagged = true
	return nil
}

func (r *Runner) emit(j *job) {
	name := "restores_verified"
	if j.result != contract.VerifiedOK {
		name = "restores_failed"
	}
	ms := []metrics.Metric{{Name: name, Unit: "Count", Value: 1}}
	if !j.startUnknown {
		ms = append(ms, metrics.Metric{Name: "verify_seconds", Unit: "Seconds", Value: j.ended.Sub(j.started).Seconds()})
	}
	if j.report != nil && j.report.StartMS > 0 {
		ms = append(ms, metrics.Metric{Name: "restore_start_ms", Unit: "Milliseconds", Value: j.report.StartMS})
	}
	props := map[string]any{"instance_id": j.set.InstanceID, "run_id": j.set.RunID, "verify_result": j.result}
	if j.note != "" {
		props["verify_note"] = j.note
	}
	if err := r.Metrics.Emit(props, ms...); err != nil {
		r.Log.Warn("emit metrics", "error", err)
	}
}
