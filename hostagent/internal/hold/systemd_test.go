package hold

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/hostagent/internal/state"
)

func TestSystemdTimer(t *testing.T) {
	if systemdTimer("/bin/true", "/run/quiesce", filepath.Join(t.TempDir(), "absent")) != nil {
		t.Fatal("armed a timer without systemd")
	}
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + argsFile + "\n"
	if err := os.WriteFile(filepath.Join(dir, "systemd-run"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	arm := systemdTimer("/bin/true", "/run/quiesce", dir)
	if arm == nil {
		t.Fatal("systemd present but no timer")
	}
	run := &state.Run{RunID: "r-1", DeadlineMono: state.MonoNow() + int64(30*time.Second)}
	unit, err := arm(context.Background(), run)
	if err != nil || unit != "quiesce-r-1.timer" {
		t.Fatalf("unit %q, %v", unit, err)
	}
	b, _ := os.ReadFile(argsFile)
	args := strings.Fields(string(b))
	joined := strings.Join(args, " ")
	for _, want := range []string{"--unit quiesce-r-1", "/bin/true recover --state-dir /run/quiesce --run-id r-1"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("systemd-run %s: missing %q", joined, want)
		}
	}
	// One second after the deadline, give or take the test's own runtime.
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--on-active="); ok {
			d, err := time.ParseDuration(v)
			if err != nil || d < 30*time.Second || d > 31*time.Second {
				t.Fatalf("--on-active=%s", v)
			}
			return
		}
	}
	t.Fatalf("no --on-active in %s", joined)
}

func TestFailsafeLayers(t *testing.T) {
	for _, tc := range []struct {
		guardian, timer bool
		want            string
	}{
		{true, true, "[guardian systemd-timer next-invocation]"},
		{true, false, "[guardian next-invocation]"},
		{false, false, "[next-invocation]"},
	} {
		if got := fmt.Sprint(FailsafeLayers(tc.guardian, tc.timer)); got != tc.want {
			t.Errorf("FailsafeLayers(%v, %v) = %s, want %s", tc.guardian, tc.timer, got, tc.want)
		}
	}
	if systemdTimerAvailable(filepath.Join(t.TempDir(), "absent")) {
		t.Error("systemd timer available without systemd")
	}
}
