package main

import (
	"context"
	"strings"
	"testing"
)

// Bad usage is refused before anything is created: exit 2 and a line naming the value.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "usage: demo"},
		{[]string{"launch"}, `unknown command "launch"`},
		{[]string{"run", "-cycles", "0"}, "-cycles 0"},
		{[]string{"run", "-writers", "0"}, "-writers 0"},
		{[]string{"run", "-workdir", "/tmp"}, `-workdir "/tmp"`},
		{[]string{"run", "-workdir", "relative"}, `-workdir "relative"`},
		{[]string{"run", "-interval", "-1s"}, "-interval -1s"},
		{[]string{"run", "stray"}, `unexpected argument "stray"`},
		{[]string{"bench", "-cycles", "5000"}, "-cycles 5000"},
		{[]string{"bench", "-seed-lock-timeout", "10ms"}, "-seed-lock-timeout 10ms"},
		{[]string{"bench", "-ssm-latency", "-1s"}, "must not be negative"},
		{[]string{"bench", "-hot-row-writers", "0"}, "-hot-row-writers 0"},
		{[]string{"bench", "-hot-row-cycles", "101"}, "-hot-row-cycles 101"},
		{[]string{"clean", "-workdir", "/"}, `-workdir "/"`},
		{[]string{"replica", "-workdir", "/var/tmp"}, `-workdir "/var/tmp"`},
		{[]string{"replica", "-writers", "0"}, "-writers 0"},
		{[]string{"replica", "-bench-cycles", "-1"}, "-bench-cycles -1"},
		{[]string{"replica", "-catch-up", "10ms"}, "-catch-up 10ms"},
		{[]string{"replica", "stray"}, `unexpected argument "stray"`},
		{[]string{"run", "-nosuchflag"}, "nosuchflag"},
	}
	for _, tt := range tests {
		var stdout, stderr strings.Builder
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != 2 {
			t.Errorf("demo %q: exit %d, want 2 (stderr %q)", tt.args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("demo %q: stderr %q does not name %q", tt.args, stderr.String(), tt.want)
		}
	}
	var stdout, stderr strings.Builder
	if code := run(context.Background(), []string{"version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "demo ") {
		t.Errorf("version: %d %q", code, stdout.String())
	}
}
