package lambdaenv

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/quiesce/quiesce/test/awslocal"
)

// Host is a scripted hostagent behind the stand-in's RunCommand: it
// records every invocation, refuses one Check finds wrong (exit 2, as
// hostagent does for a volume it is not given attached), waits for Release
// when set, and answers with Result, else Pass.
type Host struct {
	mu sync.Mutex
	// Check says what is wrong with an invocation ("" when nothing).
	Check func(inv awslocal.Invocation) string
	// Result builds the answer; nil answers Pass.
	Result func(inv awslocal.Invocation) awslocal.CommandResult
	// Pass is the answer of a host that found nothing wrong.
	Pass func(inv awslocal.Invocation) awslocal.CommandResult
	// Release, when set, holds every answer until it is closed.
	Release chan struct{}
	invs    []awslocal.Invocation
	errs    []string
}

// Run is the stand-in's RunCommand.
func (h *Host) Run(ctx context.Context, inv awslocal.Invocation) awslocal.CommandResult {
	h.mu.Lock()
	h.invs = append(h.invs, inv)
	check, release, result := h.Check, h.Release, h.Result
	h.mu.Unlock()
	if check != nil {
		if msg := check(inv); msg != "" {
			h.mu.Lock()
			h.errs = append(h.errs, msg)
			h.mu.Unlock()
			return awslocal.CommandResult{ResponseCode: 2, Stdout: `{"error":"volume not attached","exit_code":2}`}
		}
	}
	if release != nil {
		select {
		case <-release:
		case <-ctx.Done():
			return awslocal.CommandResult{Status: "Cancelled", ResponseCode: -1}
		}
	}
	if result != nil {
		return result(inv)
	}
	return h.Pass(inv)
}

// Invocations are the commands the host ran, in order.
func (h *Host) Invocations() []awslocal.Invocation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]awslocal.Invocation(nil), h.invs...)
}

// Errors are what Check found wrong, in order.
func (h *Host) Errors() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.errs...)
}

// Report is hostagent's answer: the report as one JSON line on stdout and
// the exit code.
func Report(report any, code int) awslocal.CommandResult {
	b, err := json.Marshal(report)
	if err != nil {
		panic(err) // a test's own report type that cannot be encoded
	}
	return awslocal.CommandResult{ResponseCode: code, Stdout: string(b) + "\n"}
}
