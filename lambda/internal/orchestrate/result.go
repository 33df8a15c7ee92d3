package orchestrate

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
)

// Status of one instance in a run.
const (
	StatusOK      = "ok"
	StatusFailed  = "failed"
	StatusSkipped = "skipped"
)

// Consistency tag values (docs/architecture.md#consistency).
const (
	Application = contract.ConsistencyApplication
	Crash       = contract.ConsistencyCrash
)

// Result is the invocation's JSON result.
type Result struct {
	RunID      string           `json:"run_id"`
	Stack      string           `json:"stack"`
	DryRun     bool             `json:"dry_run"`
	StartedAt  time.Time        `json:"started_at"`
	FinishedAt time.Time        `json:"finished_at"`
	OK         int              `json:"instances_ok"`
	Failed     int              `json:"instances_failed"`
	Skipped    int              `json:"instances_skipped"`
	Instances  []InstanceResult `json:"instances"`
	Retention  *RetentionResult `json:"retention,omitempty"`
}

// InstanceResult says what happened to one instance.
type InstanceResult struct {
	InstanceID string `json:"instance_id"`
	Name       string `json:"name,omitempty"`
	Status     string `json:"status"`
	Reason     string `json:"reason,omitempty"`
	// Consistency of this instance's snapshots (application|crash), empty
	// when none were created.
	Consistency     string `json:"consistency,omitempty"`
	ConsistencyNote string `json:"consistency_note,omitempty"`
	// WindowMS is the write-blocked window on the host: FreezeReport
	// frozen_at → ThawReport thawed_at (host clock).
	WindowMS float64 `json:"window_ms,omitempty"`
	// LambdaWindowMS is measured by the Lambda: freeze SendCommand sent →
	// thaw SendCommand returned (an upper bound of the window's start).
	LambdaWindowMS float64 `json:"lambda_window_ms,omitempty"`
	// SnapshotCallMS: first snapshot call sent → last one returned.
	SnapshotCallMS float64          `json:"snapshot_call_ms,omitempty"`
	SnapshotAPI    string           `json:"snapshot_api,omitempty"` // CreateSnapshots | CreateSnapshot
	Snapshots      []SnapshotResult `json:"snapshots,omitempty"`
	Mounts         []string         `json:"mounts,omitempty"`
	Lock           *LockResult      `json:"lock,omitempty"`
	FreezeSent     bool             `json:"freeze_sent"`
	ThawSent       bool             `json:"thaw_sent"`
	ThawedBy       string           `json:"thawed_by,omitempty"`
	ThawLate       bool             `json:"thaw_late,omitempty"`
	// ThawedByDeadline: hostagent's fail-safe, not our thaw, ended the hold.
	ThawedByDeadline bool `json:"thawed_by_deadline,omitempty"`
	// LockLost: the MySQL lock ended during the hold (hostagent's ThawReport
	// says when and why); the snapshots are crash.
	LockLost        *contract.LockLoss    `json:"lock_lost,omitempty"`
	FreezeCommandID string                `json:"freeze_command_id,omitempty"`
	ThawCommandID   string                `json:"thaw_command_id,omitempty"`
	Check           *contract.CheckReport `json:"check,omitempty"`
	Errors          []string              `json:"errors,omitempty"`
}

// SnapshotResult is one snapshot created in the run.
type SnapshotResult struct {
	SnapshotID  string `json:"snapshot_id"`
	VolumeID    string `json:"volume_id"`
	Device      string `json:"device,omitempty"`
	Mounts      string `json:"mounts,omitempty"`
	Consistency string `json:"consistency"`
	Incomplete  bool   `json:"incomplete,omitempty"`
}

// LockResult is the MySQL lock as hostagent reported it.
type LockResult struct {
	Mode       string  `json:"mode"`
	Requested  string  `json:"requested,omitempty"`
	AcquiredMS float64 `json:"acquired_ms,omitempty"`
	BinlogFile string  `json:"binlog_file,omitempty"`
	BinlogPos  uint64  `json:"binlog_pos,omitempty"`
	GTID       string  `json:"gtid,omitempty"`
	// Replication is every channel's position on a replica (the tags
	// carry the default channel's only); Restore the settings a restored
	// copy must start with. Both as hostagent reported them.
	Replication *contract.Replication `json:"replication,omitempty"`
	Restore     *contract.RestoreInfo `json:"restore,omitempty"`
}

// RetentionResult says what retention did.
type RetentionResult struct {
	Pruned  []string `json:"pruned,omitempty"`
	InUse   []string `json:"in_use,omitempty"`
	Errors  []string `json:"errors,omitempty"`
	Scope   string   `json:"scope"`
	Skipped string   `json:"skipped,omitempty"`
}

func (r *InstanceResult) errorf(format string, args ...any) {
	r.Errors = append(r.Errors, fmt.Sprintf(format, args...))
}

func (r *InstanceResult) fail(reason string) {
	r.Status = StatusFailed
	if r.Reason == "" {
		r.Reason = reason
	}
}

// maxErrorResult bounds the result JSON embedded in a RunError message.
const maxErrorResult = 200_000

// RunError is returned when any instance failed, so the invocation fails
// (and the alarm fires). It carries the whole result.
type RunError struct {
	Result *Result
	Failed []string // "i-…: reason"
}

func (e *RunError) Error() string {
	var b strings.Builder
	if e.Result != nil {
		fmt.Fprintf(&b, "quiesce run %s: %d of %d instances failed: %s", e.Result.RunID, len(e.Failed), len(e.Result.Instances), strings.Join(e.Failed, "; "))
		if j, err := json.Marshal(e.Result); err == nil {
			if len(j) > maxErrorResult {
				// Keep the error readable for huge fleets: failed instances only.
				slim := *e.Result
				slim.Instances = nil
				for _, in := range e.Result.Instances {
					if in.Status == StatusFailed {
						slim.Instances = append(slim.Instances, in)
					}
				}
				j, _ = json.Marshal(slim)
			}
			b.WriteString(" result=")
			b.Write(j)
		}
		return b.String()
	}
	return "quiesce run failed: " + strings.Join(e.Failed, "; ")
}
