package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestVerifyPoll(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		warn bool
	}{
		{"", 10 * time.Second, false},
		{"200ms", 200 * time.Millisecond, false},
		{"10m", 10 * time.Minute, false},
		{"50ms", 10 * time.Second, true},
		{"11m", 10 * time.Second, true},
		{"soon", 10 * time.Second, true},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		got := verifyPoll(tt.in, 10*time.Second, slog.New(slog.NewTextHandler(&buf, nil)))
		if got != tt.want {
			t.Errorf("verifyPoll(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if warned := strings.Contains(buf.String(), "QUIESCE_VERIFY_POLL"); warned != tt.warn || (tt.warn && !strings.Contains(buf.String(), tt.in)) {
			t.Errorf("verifyPoll(%q) log %q, want warning=%v naming the value", tt.in, buf.String(), tt.warn)
		}
	}
}
