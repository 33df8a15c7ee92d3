package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
	demodata "github.com/quiesce/quiesce/demo"
	"github.com/quiesce/quiesce/test/awslocal"
	"github.com/quiesce/quiesce/test/demo/bank"
)

// Snapshot tags the demo reads: the snapshot run's (contract) and those the
// verify action writes on the source snapshots (README "Verify restores").
const (
	TagConsistency = contract.TagConsistency
	TagBinlogFile  = contract.TagBinlogFile
	TagBinlogPos   = contract.TagBinlogPos
	TagGTID        = contract.TagGTID
	TagRunID       = contract.TagRunID

	TagVerified   = "quiesce:verified"
	TagVerifiedAt = "quiesce:verified-at"
	TagVerifyNote = "quiesce:verify-note"
	// TagSourceSnapshot is on each temporary volume the action creates.
	TagSourceSnapshot = "quiesce:source-snapshot"
)

// Verification is one snapshot's verification through the Lambda's verify
// action, and what the demo checked on top of it.
type Verification struct {
	SnapshotID string
	RunID      string
	// Damaged marks the deliberately damaged copy: it must FAIL, naming the table.
	Damaged bool `json:",omitempty"`
	// From the Lambda's result.
	Status      string                 // ok | failed | in_progress
	Reason      string                 `json:",omitempty"`
	Report      *contract.VerifyReport `json:",omitempty"`
	LambdaError string                 `json:",omitempty"`
	InvokeTime  time.Duration
	// The snapshot's tags afterwards, as the action wrote them.
	Verified   string
	VerifiedAt string
	VerifyNote string `json:",omitempty"`
	// CreateToTag: the stand-in's CreateVolume call → the CreateTags call
	// that wrote quiesce:verified on the snapshot (-1: not seen).
	CreateToTag time.Duration
	// Transfers in the copy: the tagged GTID's sequence number minus the one
	// after the schema load (the check SQL proved they agree with InnoDB).
	Transfers uint64
	// Problems are the demo's findings; empty means the verification showed
	// what it should (ok, or for the damaged copy: failed naming the table).
	Problems []string `json:",omitempty"`
}

// Passed reports whether the verification came out as it must.
func (v Verification) Passed() bool { return len(v.Problems) == 0 }

func (v *Verification) problem(format string, args ...any) {
	v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
}

// VerifyEvent is the Lambda event of the verify action for one run's set.
func (e *Env) VerifyEvent(runID string) []byte {
	ev := map[string]any{
		"action":  "verify",
		"targets": map[string]any{"instance_ids": []string{e.InstanceID}},
		"run_id":  runID,
		"verify":  map[string]any{"verifier_tag": VerifierTag, "check_sql": e.CheckSQLFile},
	}
	b, _ := json.Marshal(ev)
	return b
}

// verifyResult is the part of the verify action's result the demo reads.
type verifyResult struct {
	Verifications []struct {
		RunID     string                 `json:"run_id"`
		Snapshots []string               `json:"snapshots"`
		Status    string                 `json:"status"`
		Reason    string                 `json:"reason"`
		Report    *contract.VerifyReport `json:"report"`
	} `json:"verifications"`
	Skipped []struct {
		Reason string `json:"reason"`
	} `json:"skipped"`
}

// Verify invokes the Lambda's verify action for one snapshot's run and
// reads back what it did: its result, the snapshot's tags, the time from
// CreateVolume to the quiesce:verified tag.
func (e *Env) Verify(ctx context.Context, snapshotID, runID string) Verification {
	v := Verification{SnapshotID: snapshotID, RunID: runID, CreateToTag: -1}
	// A fresh container per invocation, as for the snapshot cycles.
	if err := e.ColdLambda(ctx); err != nil {
		v.problem("restart the Lambda container: %v", err)
		return v
	}
	ictx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	since := time.Now()
	out, err := e.Lambda.Invoke(ictx, e.VerifyEvent(runID))
	v.InvokeTime = time.Since(since)
	if err != nil {
		v.LambdaError = err.Error()
		v.problem("lambda: %v; its last log lines:\n%s", err, lastLines(e.Lambda.Logs(), 12))
	}
	var res verifyResult
	if len(out) > 0 && json.Unmarshal(out, &res) == nil {
		for _, r := range res.Verifications {
			if r.RunID == runID {
				v.Status, v.Reason, v.Report = r.Status, r.Reason, r.Report
			}
		}
		if v.Status == "" && len(res.Skipped) > 0 {
			v.Reason = res.Skipped[0].Reason
		}
	}
	if s, ok := e.AWS.Snapshot(snapshotID); ok {
		v.Verified, v.VerifiedAt, v.VerifyNote = s.Tags[TagVerified], s.Tags[TagVerifiedAt], s.Tags[TagVerifyNote]
		if seq, ok := gtidSeq(s.Tags[TagGTID]); ok && seq >= e.GTIDBase {
			v.Transfers = seq - e.GTIDBase
		}
	}
	v.CreateToTag = e.createToTag(snapshotID, since)
	return v
}

// createToTag is the stand-in's time from the first CreateVolume of the
// snapshot after since to the CreateTags call that set quiesce:verified on it.
func (e *Env) createToTag(snapshotID string, since time.Time) time.Duration {
	var created time.Time
	for _, c := range e.AWS.CallsOf("CreateVolume") {
		if c.ErrorCode == "" && !c.At.Before(since) && c.Form.Get("SnapshotId") == snapshotID {
			created = c.At
			break
		}
	}
	if created.IsZero() {
		return -1
	}
	for _, c := range e.AWS.CallsOf("CreateTags") {
		if c.ErrorCode != "" || c.At.Before(created) || !hasResource(c, snapshotID) {
			continue
		}
		if _, ok := c.Tags()[TagVerified]; ok {
			return c.At.Sub(created)
		}
	}
	return -1
}

// hasResource reports whether a CreateTags call names the resource (ResourceId.N).
func hasResource(c awslocal.Call, id string) bool {
	for k, vs := range c.Form {
		if strings.HasPrefix(k, "ResourceId.") && len(vs) > 0 && vs[0] == id {
			return true
		}
	}
	return false
}

// judgeSound checks a verification of a real snapshot: the action said ok,
// the tags say ok, and every transfer whose COMMIT returned before the
// freeze began is in the copy (the one check the product cannot make: it
// needs the writer's record).
func judgeSound(v *Verification, freezeStarted time.Time, commits []bank.Commit) {
	if v.Status != "ok" || v.Verified != "ok" {
		v.problem("verification %s (tag %s=%q): %s", orNone(v.Status), TagVerified, v.Verified, firstOf(v.VerifyNote, v.Reason))
	}
	if want := len(bank.SplitStatements(demodata.BankChecksSQL)); v.Report != nil && len(v.Report.Checks) != want {
		v.problem("%d SQL checks ran, want the %d of bank-checks.sql", len(v.Report.Checks), want)
	}
	if freezeStarted.IsZero() {
		return
	}
	if v.Transfers == 0 {
		v.problem("the snapshot's %s tag names no transfers after the schema load: the no-lost-commit check cannot run", TagGTID)
		return
	}
	for _, c := range commits {
		if c.End.Before(freezeStarted) && uint64(c.ID) > v.Transfers {
			v.problem("transfer %d committed %s before the freeze began but the copy holds only 1..%d",
				c.ID, freezeStarted.Sub(c.End).Round(time.Microsecond), v.Transfers)
			return
		}
	}
}

// judgeDamaged checks the damaged copy's verification: it must fail, and
// the failure must name the damaged table.
func judgeDamaged(v *Verification, table string) {
	if v.Status != "failed" || v.Verified != "failed" {
		v.problem("the damaged copy was not caught: status %s, tag %s=%q", orNone(v.Status), TagVerified, v.Verified)
		return
	}
	named := strings.Contains(v.VerifyNote, table)
	if v.Report != nil {
		for _, f := range v.Report.TablesFailed {
			named = named || f.Table == table
		}
	}
	if !named {
		v.problem("the damaged copy failed without naming %s: %s", table, v.VerifyNote)
	}
}

// gtidSeq is the sequence number of a one-domain MariaDB GTID position (d-s-n).
func gtidSeq(pos string) (uint64, bool) {
	f := strings.Split(strings.TrimSpace(pos), "-")
	if len(f) != 3 || strings.Contains(pos, ",") {
		return 0, false
	}
	n, err := strconv.ParseUint(f[2], 10, 64)
	return n, err == nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// lastLines is the end of a log, n lines at most.
func lastLines(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
