package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/quiesce/quiesce/lambda/internal/clone"
	"github.com/quiesce/quiesce/lambda/internal/orchestrate"
	"github.com/quiesce/quiesce/lambda/internal/verify"
)

// actionHandler is a Handler for stack "st" with no AWS clients and no
// verify or clone runner: an action that reaches AWS would panic.
func actionHandler() *Handler {
	var logs bytes.Buffer
	getenv := func(k string) string { return map[string]string{"QUIESCE_STACK": "st"}[k] }
	return &Handler{Runner: orchestrate.NewRunner(nil, nil, nil, nil, nil), Getenv: getenv, Log: slog.New(slog.NewJSONHandler(&logs, nil))}
}

// Without a verify runner the action is refused before any AWS call (the
// runner's nil clients would panic otherwise); with one, its options are
// validated first.
func TestVerifyActionNeedsAVerifier(t *testing.T) {
	h := actionHandler()
	_, err := h.Handle(context.Background(), json.RawMessage(`{"action":"verify","targets":{"instance_ids":["i-0123456789abcdef0"]}}`))
	if err == nil || !strings.Contains(err.Error(), "verify action is not configured") {
		t.Fatalf("error = %v", err)
	}
	h.Verifier = verify.NewRunner(nil, nil, nil, nil, nil)
	_, err = h.Handle(context.Background(), json.RawMessage(`{"action":"verify","targets":{"instance_ids":["i-0123456789abcdef0"]},"verify":{"verifier_tag":"bad$tag"}}`))
	if err == nil || !strings.Contains(err.Error(), "verify.verifier_tag") {
		t.Fatalf("error = %v, want the bad verifier tag named", err)
	}
}

// The clone action is dispatched to the clone runner: without one it is
// refused before any AWS call; with one, its options are validated first.
func TestCloneActionDispatch(t *testing.T) {
	h := actionHandler()
	ev := json.RawMessage(`{"action":"clone","clone":{"target_instance":"i-0000000000000beef"}}`)
	if _, err := h.Handle(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "clone action is not configured") {
		t.Fatalf("error = %v", err)
	}
	h.Cloner = clone.NewRunner(nil, nil, nil, nil)
	if _, err := h.Handle(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "clone.source_instance") {
		t.Fatalf("error = %v, want the missing source named", err)
	}
}
