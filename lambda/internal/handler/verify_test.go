package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/quiesce/quiesce/lambda/internal/orchestrate"
)

// Without a verify runner the action is refused before any AWS call (the
// runner's nil clients would panic otherwise).
func TestVerifyActionNeedsAVerifier(t *testing.T) {
	var logs bytes.Buffer
	h := &Handler{Runner: orchestrate.NewRunner(nil, nil, nil, nil, nil), Getenv: func(k string) string {
		return map[string]string{"QUIESCE_STACK": "st"}[k]
	}, Log: slog.New(slog.NewJSONHandler(&logs, nil))}
	_, err := h.Handle(context.Background(), json.RawMessage(`{"action":"verify","targets":{"instance_ids":["i-0123456789abcdef0"]}}`))
	if err == nil || !strings.Contains(err.Error(), "verify action is not configured") {
		t.Fatalf("error = %v", err)
	}
}
