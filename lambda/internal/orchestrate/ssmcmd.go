package orchestrate

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/lambda/internal/ssmrun"
)

// Command outcomes that no hostagent exit code states; a known exit code
// comes back as a *contract.ExitError, which unwraps to contract's sentinels
// (contract.ErrBusy, ...).
var (
	ErrOutcomeUnknown = errors.New("freeze outcome unknown")
	ErrThawFailed     = errors.New("thaw not confirmed")
)

// CommandError is a failed or unknown SSM command outcome.
type CommandError struct {
	// Kind is ErrOutcomeUnknown, ErrThawFailed or the *contract.ExitError
	// of hostagent's exit code.
	Kind     error
	Status   string
	ExitCode int32
	Message  string
}

func (e *CommandError) Error() string {
	msg := e.Kind.Error()
	if e.Status != "" {
		msg += fmt.Sprintf(" [status %s, exit %d]", e.Status, e.ExitCode)
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Kind }

// PollConfig is the adaptive GetCommandInvocation schedule: the first poll
// First after sending (SSM needs that long to even know the invocation),
// then every Hot while within HotFor of sending (where a freeze usually
// completes, so detection adds at most Hot to the write-blocked window),
// then growing ×1.5 up to Max. Throttling doubles the interval up to
// ThrottleMax. Every poll also takes a token from the run's shared
// PollBudget, so a fleet's hot polling stays within SSM's API rate.
type PollConfig struct {
	First       time.Duration
	Hot         time.Duration
	HotFor      time.Duration
	Max         time.Duration
	ThrottleMax time.Duration
}

// DefaultPoll is the production schedule.
var DefaultPoll = PollConfig{First: 100 * time.Millisecond, Hot: 30 * time.Millisecond, HotFor: 3 * time.Second, Max: 250 * time.Millisecond, ThrottleMax: time.Second}

// commandTimeoutSeconds is SendCommand's delivery timeout: the minimum SSM
// allows. A freeze delivered later than that must not run at all.
const commandTimeoutSeconds = 30

// send sends the document to one instance, retrying throttling (and, unless
// once is set, 5xx and transport errors) until `until`. mayHaveRun reports whether the command may have reached
// SSM even though err != nil.
func (r *Runner) send(ctx context.Context, doc, instanceID string, params contract.CommandParams, until time.Time, once bool) (cmdID string, mayHaveRun bool, err error) {
	in := ssmrun.Input(doc, instanceID, params.Parameters(), commandTimeoutSeconds*time.Second, "quiesce "+params.Action+" "+params.RunID)
	err = r.retry(ctx, until, retryPolicy{base: 50 * time.Millisecond, cap: 500 * time.Millisecond, throttleOnly: once}, func(ctx context.Context) error {
		id, err := ssmrun.SendOnce(ctx, r.SSM, in)
		if err != nil {
			// An answer without an ID is an answer: not a transport doubt.
			if awsapi.IsAmbiguous(err) && !errors.Is(err, ssmrun.ErrNoCommandID) {
				mayHaveRun = true
			}
			return err
		}
		cmdID = id
		return nil
	})
	if err != nil {
		return "", mayHaveRun, fmt.Errorf("send %s command: %w", params.Action, err)
	}
	return cmdID, true, nil
}

// wait polls GetCommandInvocation until the invocation reaches a terminal
// status or `until` passes (then it returns ErrOutcomeUnknown).
func (r *Runner) wait(ctx context.Context, cmdID, instanceID string, sentAt, until time.Time) (*ssm.GetCommandInvocationOutput, error) {
	pc := r.Poll
	interval := pc.First
	var lastErr error
	// lastStatus is what SSM last answered (Pending, InProgress, Delayed…);
	// an error after it (throttling) replaces it.
	var lastStatus string
	for {
		now := r.Clock.Now()
		if !now.Add(interval).Before(until) {
			// Sleep to `until` for one last poll only if it is worth it.
			if rem := until.Sub(now); rem > 0 && rem < interval {
				interval = rem
			} else {
				last := fmt.Sprintf("last error: %v", lastErr)
				if lastErr == nil {
					last = "never polled"
				}
				if lastStatus != "" {
					last = "last status " + lastStatus
				}
				return nil, &CommandError{Kind: ErrOutcomeUnknown, Message: fmt.Sprintf("no result for command %s within %s (%s)", cmdID, until.Sub(sentAt).Round(time.Millisecond), last)}
			}
		}
		if err := r.Clock.Sleep(ctx, interval); err != nil {
			return nil, &CommandError{Kind: ErrOutcomeUnknown, Message: fmt.Sprintf("stopped waiting for command %s: %v", cmdID, err)}
		}
		if r.PollBudget != nil {
			if err := r.PollBudget.Wait(ctx); err != nil {
				return nil, &CommandError{Kind: ErrOutcomeUnknown, Message: fmt.Sprintf("stopped waiting for command %s: %v", cmdID, err)}
			}
		}
		callCtx, cancel := r.Clock.WithTimeout(ctx, max(until.Sub(r.Clock.Now()), 500*time.Millisecond))
		out, err := r.SSM.GetCommandInvocation(callCtx, &ssm.GetCommandInvocationInput{CommandId: aws.String(cmdID), InstanceId: aws.String(instanceID)}, awsapi.NoSSMRetry)
		cancel()
		elapsed := r.Clock.Now().Sub(sentAt)
		next := pc.Hot
		if elapsed > pc.HotFor {
			next = min(time.Duration(float64(interval)*1.5), pc.Max)
			next = max(next, pc.Hot)
		}
		switch {
		case err == nil:
		case awsapi.IsInvocationDoesNotExist(err):
			lastErr = err
			lastStatus = ""
			interval = next
			continue
		case awsapi.IsThrottle(err):
			lastErr = err
			lastStatus = ""
			interval = min(max(interval*2, pc.Hot), pc.ThrottleMax)
			continue
		case awsapi.IsRetryable(err) || awsapi.IsAmbiguous(err):
			lastErr = err
			lastStatus = ""
			if ctx.Err() != nil {
				return nil, &CommandError{Kind: ErrOutcomeUnknown, Message: fmt.Sprintf("stopped waiting for command %s: %v", cmdID, ctx.Err())}
			}
			interval = next
			continue
		default:
			return nil, &CommandError{Kind: ErrOutcomeUnknown, Message: fmt.Sprintf("get command invocation %s: %v", cmdID, err)}
		}
		lastStatus = string(out.Status)
		if d := aws.ToString(out.StatusDetails); d != "" && d != lastStatus {
			lastStatus += " (" + d + ")"
		}
		switch out.Status {
		case ssmtypes.CommandInvocationStatusSuccess, ssmtypes.CommandInvocationStatusFailed,
			ssmtypes.CommandInvocationStatusTimedOut, ssmtypes.CommandInvocationStatusCancelled:
			return out, nil
		}
		interval = next
	}
}

// decodeJSON finds the one JSON object hostagent printed
// (docs/architecture.md#wire-contract). The document passes stdout through
// unchanged, but tolerate a stray line before it.
func decodeJSON(stdout string, v any) error {
	s := strings.TrimSpace(stdout)
	if s == "" {
		return errors.New("empty output")
	}
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(v); err == nil {
		return nil
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, "{") {
			if err := json.Unmarshal([]byte(l), v); err == nil {
				return nil
			}
		}
	}
	return fmt.Errorf("no JSON object in output %q", ssmrun.Truncate(s, 200))
}

// errorMessage extracts hostagent's ErrorReport message, or stderr's last line.
func errorMessage(out *ssm.GetCommandInvocationOutput) string {
	var er contract.ErrorReport
	if decodeJSON(aws.ToString(out.StandardOutputContent), &er) == nil && er.Error != "" {
		return er.Error
	}
	se := strings.TrimSpace(aws.ToString(out.StandardErrorContent))
	if i := strings.LastIndexByte(se, '\n'); i >= 0 {
		se = se[i+1:]
	}
	return ssmrun.Truncate(se, 300)
}

// parseFreeze turns the freeze invocation into a FreezeReport or a typed error.
func parseFreeze(out *ssm.GetCommandInvocationOutput, runID string) (*contract.FreezeReport, error) {
	status := string(out.Status)
	switch out.Status {
	case ssmtypes.CommandInvocationStatusSuccess:
		var fr contract.FreezeReport
		if err := decodeJSON(aws.ToString(out.StandardOutputContent), &fr); err != nil {
			return nil, &CommandError{Kind: ErrOutcomeUnknown, Status: status, ExitCode: out.ResponseCode, Message: "malformed FreezeReport: " + err.Error()}
		}
		if fr.RunID != "" && fr.RunID != runID {
			return nil, &CommandError{Kind: ErrOutcomeUnknown, Status: status, Message: fmt.Sprintf("FreezeReport is for run %q, not %q", fr.RunID, runID)}
		}
		if len(fr.Mounts) == 0 {
			return nil, &CommandError{Kind: ErrOutcomeUnknown, Status: status, Message: "FreezeReport lists no mounts"}
		}
		return &fr, nil
	case ssmtypes.CommandInvocationStatusFailed:
		ce := &CommandError{Kind: ErrOutcomeUnknown, Status: status, ExitCode: out.ResponseCode, Message: errorMessage(out)}
		// Only the codes a freeze exits with say what happened; anything
		// else (a late thaw's 4 from a confused host, a signal) says nothing.
		switch code := contract.ExitCode(out.ResponseCode); code {
		case contract.ExitUsage, contract.ExitBusy, contract.ExitLockWait, contract.ExitFailed:
			ce.Kind = &contract.ExitError{Code: code}
		}
		return nil, ce
	}
	return nil, &CommandError{Kind: ErrOutcomeUnknown, Status: status, ExitCode: out.ResponseCode, Message: errorMessage(out)}
}

// freezeMayHold reports whether, after this freeze error, something may
// still be held on the host (so thaw must be sent). hostagent guarantees
// that exit 2, 3 and 5 changed nothing of ours (docs/architecture.md#exit-codes);
// exit 1 means it rolled back, but a thaw costs one command outside the
// window and covers a rollback bug.
func freezeMayHold(err error) bool {
	return !(errors.Is(err, contract.ErrUsage) || errors.Is(err, contract.ErrBusy) || errors.Is(err, contract.ErrLockWait))
}

// parseThaw returns the ThawReport (exit 0, or exit 4 = late) or an error.
func parseThaw(out *ssm.GetCommandInvocationOutput) (*contract.ThawReport, error) {
	ok := out.Status == ssmtypes.CommandInvocationStatusSuccess ||
		(out.Status == ssmtypes.CommandInvocationStatusFailed && contract.ExitCode(out.ResponseCode) == contract.ExitLate)
	if !ok {
		return nil, &CommandError{Kind: ErrThawFailed, Status: string(out.Status), ExitCode: out.ResponseCode, Message: errorMessage(out)}
	}
	var tr contract.ThawReport
	if err := decodeJSON(aws.ToString(out.StandardOutputContent), &tr); err != nil {
		return nil, &CommandError{Kind: ErrThawFailed, Status: string(out.Status), ExitCode: out.ResponseCode, Message: "malformed ThawReport: " + err.Error()}
	}
	if contract.ExitCode(out.ResponseCode) == contract.ExitLate {
		tr.Late = true
	}
	return &tr, nil
}
