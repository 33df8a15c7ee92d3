package handler

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/quiesce/quiesce/lambda/internal/orchestrate"
)

// CloudWatch Logs cuts events at 256 KB: a fleet's full result must not be
// logged as one line (it would arrive truncated, unparseable); the summary
// and the failed instances are logged instead.
func TestRunResultLogFitsOneLogEvent(t *testing.T) {
	res := &orchestrate.Result{RunID: "r1"}
	for i := 0; i < 3000; i++ {
		st := orchestrate.StatusOK
		if i == 7 {
			st = orchestrate.StatusFailed
		}
		res.Instances = append(res.Instances, orchestrate.InstanceResult{InstanceID: "i-0123456789abcdef0", Status: st, Reason: strings.Repeat("x", 60), Mounts: []string{"/var/lib/mysql", "/var/lib/mysql-binlog"}})
	}
	var buf bytes.Buffer
	logResult(slog.New(slog.NewJSONHandler(&buf, nil)), res)
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if len(line) > maxLogResult+4096 {
			t.Fatalf("log line of %d bytes", len(line))
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %v", err)
		}
	}
	if !strings.Contains(buf.String(), `"failed_instances"`) {
		t.Fatalf("failed instances missing from the slim log: %.300s", buf.String())
	}

	buf.Reset()
	small := &orchestrate.Result{RunID: "r2", Instances: res.Instances[:2]}
	logResult(slog.New(slog.NewJSONHandler(&buf, nil)), small)
	if !strings.Contains(buf.String(), `"result":{"run_id":"r2"`) {
		t.Fatalf("small result not logged whole: %s", buf.String())
	}
}
