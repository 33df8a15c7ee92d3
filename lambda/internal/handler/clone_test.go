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
)

// The clone action is dispatched to the clone runner: without one it is
// refused before any AWS call; with one, its options are validated first.
func TestCloneActionDispatch(t *testing.T) {
	var logs bytes.Buffer
	getenv := func(k string) string { return map[string]string{"QUIESCE_STACK": "st"}[k] }
	h := &Handler{Runner: orchestrate.NewRunner(nil, nil, nil, nil, nil), Getenv: getenv, Log: slog.New(slog.NewJSONHandler(&logs, nil))}
	ev := json.RawMessage(`{"action":"clone","clone":{"target_instance":"i-0000000000000beef"}}`)
	if _, err := h.Handle(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "clone action is not configured") {
		t.Fatalf("error = %v", err)
	}
	h.Cloner = clone.NewRunner(nil, nil, nil, nil)
	if _, err := h.Handle(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "clone.source_instance") {
		t.Fatalf("error = %v, want the missing source named", err)
	}
}
