package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/demo/bank"
)

// Cycle is one Lambda invocation and what it did.
type Cycle struct {
	N           int
	RunID       string
	InvokeStart time.Time
	InvokeTime  time.Duration
	LambdaError string          `json:",omitempty"`
	Result      json.RawMessage `json:",omitempty"` // the Lambda's response
	// From the Lambda's result (-1 if absent): lambda_window_ms = freeze
	// SendCommand sent → thaw command returned (the Lambda's clock);
	// window_ms = FreezeReport.frozen_at → ThawReport.thawed_at (filesystem frozen).
	LambdaWindowMS float64
	FrozenMS       float64
	SnapshotCallMS float64
	SnapshotAPI    string

	Freeze     *contract.FreezeReport `json:",omitempty"`
	FreezeExit int
	Thaw       *contract.ThawReport `json:",omitempty"`
	ThawExit   int
	// ThawStarted is when the thaw script started on the "instance".
	ThawStarted time.Time
	// Window is the write-blocked window from hostagent's reports: freeze
	// command start → thaw done.
	Window    time.Duration
	Snapshots []CycleSnapshot
	// CopyTime is the stand-in's total snapshot copy time inside the window.
	CopyTime time.Duration
	Stall    bank.Stall
	Problems []string `json:",omitempty"`
}

// CycleSnapshot is one snapshot a cycle created.
type CycleSnapshot struct {
	ID       string
	VolumeID string
	Image    string
	Tags     map[string]string
	Reflink  bool
	CopyTime time.Duration
	State    string // as the stand-in reports it (pending/completed)
}

// OK reports whether the cycle produced an application-consistent snapshot set.
func (c *Cycle) OK() bool { return len(c.Problems) == 0 }

func (c *Cycle) problem(format string, args ...any) {
	c.Problems = append(c.Problems, fmt.Sprintf(format, args...))
}

// Event is the snapshot event (README "Run it by hand") the demo sends for one cycle.
func (e *Env) Event(runID string) []byte {
	ev := map[string]any{
		"run_id":         runID,
		"targets":        map[string]any{"instance_ids": []string{e.InstanceID}},
		"mounts":         []string{e.Vol.Dir},
		"mysql":          map[string]any{"lock": "auto", "defaults_file": e.DefaultsFile},
		"freeze_timeout": e.Cfg.FreezeTimeout,
		"snapshot_tags":  map[string]string{"demo": "true"},
		// Keep every snapshot: the demo verifies them all.
		"retention":       map[string]any{"keep_last": 1000},
		"max_concurrency": 1,
	}
	b, _ := json.Marshal(ev)
	return b
}

// RunCycle invokes the Lambda once and collects what hostagent and the
// stand-in recorded for that run id.
func (e *Env) RunCycle(ctx context.Context, n int, runID string) *Cycle {
	c := &Cycle{N: n, RunID: runID, LambdaWindowMS: -1, FrozenMS: -1, SnapshotCallMS: -1, FreezeExit: -1, ThawExit: -1}
	if n > 1 {
		if err := e.ColdLambda(ctx); err != nil {
			c.problem("restart the Lambda container: %v", err)
			return c
		}
	}
	ictx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	c.InvokeStart = time.Now()
	out, err := e.Lambda.Invoke(ictx, e.Event(runID))
	c.InvokeTime = time.Since(c.InvokeStart)
	if len(out) > 0 && json.Valid(out) {
		c.Result = out
		var lr lambdaResult
		if json.Unmarshal(out, &lr) == nil {
			for _, in := range lr.Instances {
				if in.InstanceID != e.InstanceID {
					continue
				}
				c.LambdaWindowMS, c.FrozenMS, c.SnapshotCallMS, c.SnapshotAPI = in.LambdaWindowMS, in.WindowMS, in.SnapshotCallMS, in.SnapshotAPI
				if in.Status != "ok" {
					c.problem("lambda reports instance %s %s: %s", in.InstanceID, in.Status, strings.Join(in.Errors, "; "))
				}
			}
		}
	}
	if err != nil {
		c.LambdaError = err.Error()
		c.problem("lambda: %v", err)
	}

	e.collectReports(c)
	e.collectSnapshots(c)
	if e.Writer != nil && c.Freeze != nil && c.Thaw != nil {
		c.Stall = bank.StallDuring(e.Writer.Commits(), c.Freeze.StartedAt, c.Thaw.ThawedAt)
	}
	return c
}

// collectReports reads hostagent's FreezeReport and ThawReport of the
// cycle's run, as the stand-in captured them from the SSM script, and the
// window between them.
func (e *Env) collectReports(c *Cycle) {
	for _, r := range e.Hooks.Runs() {
		if r.Invocation.Param("runId") != c.RunID {
			continue
		}
		switch r.Invocation.Param("action") {
		case "freeze":
			c.FreezeExit = r.Result.ResponseCode
			var fr contract.FreezeReport
			if json.Unmarshal([]byte(r.Result.Stdout), &fr) == nil && !fr.StartedAt.IsZero() {
				c.Freeze = &fr
			}
		case "thaw":
			c.ThawExit = r.Result.ResponseCode
			c.ThawStarted = r.Started
			var tr contract.ThawReport
			if json.Unmarshal([]byte(r.Result.Stdout), &tr) == nil && tr.RunID != "" {
				c.Thaw = &tr
			}
		}
	}
	switch {
	case c.Freeze == nil:
		c.problem("no FreezeReport from hostagent (freeze exit %d)", c.FreezeExit)
	case c.Thaw == nil:
		c.problem("no ThawReport from hostagent (thaw exit %d)", c.ThawExit)
	default:
		c.Window = c.Thaw.ThawedAt.Sub(c.Freeze.StartedAt)
		if c.Thaw.ThawedBy != contract.ThawedByCommand || c.Thaw.Late {
			c.problem("thawed by %s (late=%v), not by the Lambda's thaw command", c.Thaw.ThawedBy, c.Thaw.Late)
		}
	}

}

// collectSnapshots reads the snapshots tagged with the cycle's run id and
// checks their tags against the volume and the FreezeReport.
func (e *Env) collectSnapshots(c *Cycle) {
	clones := e.Hooks.Clones()
	for _, s := range e.AWS.Snapshots() {
		if s.Tags[TagRunID] != c.RunID {
			continue
		}
		cs := CycleSnapshot{ID: s.ID, VolumeID: s.VolumeID, Tags: s.Tags, Image: e.Hooks.SnapshotPath(s.ID), State: s.State}
		if cl, ok := clones[s.ID]; ok {
			cs.Reflink, cs.CopyTime = cl.Reflink, cl.Duration
			c.CopyTime += cl.Duration
		}
		c.Snapshots = append(c.Snapshots, cs)
	}
	sort.Slice(c.Snapshots, func(i, j int) bool { return c.Snapshots[i].ID < c.Snapshots[j].ID })
	if len(c.Snapshots) == 0 {
		c.problem("no snapshot tagged %s=%s", TagRunID, c.RunID)
	}
	for _, s := range c.Snapshots {
		if s.VolumeID != e.Vol.ID {
			c.problem("snapshot %s is of %s, not the data volume %s", s.ID, s.VolumeID, e.Vol.ID)
		}
		if got := s.Tags[TagConsistency]; got != "application" {
			c.problem("snapshot %s tagged %s=%q", s.ID, TagConsistency, got)
		}
		if c.Freeze != nil {
			if f := c.Freeze.Lock.BinlogFile; f != "" && s.Tags[TagBinlogFile] != f {
				c.problem("snapshot %s binlog-file tag %q ≠ FreezeReport %q", s.ID, s.Tags[TagBinlogFile], f)
			}
			if p := c.Freeze.Lock.BinlogPos; p != 0 && s.Tags[TagBinlogPos] != strconv.FormatUint(p, 10) {
				c.problem("snapshot %s binlog-pos tag %q ≠ FreezeReport %d", s.ID, s.Tags[TagBinlogPos], p)
			}
		}
	}
}

// lambdaResult is the part of the Lambda's result document the demo reads.
type lambdaResult struct {
	Instances []struct {
		InstanceID     string   `json:"instance_id"`
		Status         string   `json:"status"`
		WindowMS       float64  `json:"window_ms"`
		LambdaWindowMS float64  `json:"lambda_window_ms"`
		SnapshotCallMS float64  `json:"snapshot_call_ms"`
		SnapshotAPI    string   `json:"snapshot_api"`
		Errors         []string `json:"errors"`
	} `json:"instances"`
}
