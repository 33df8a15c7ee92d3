package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
)

// TestStateDirOnFrozenFilesystemRefused: a state dir on a filesystem someone
// froze must be refused quickly. Any write there blocks in uninterruptible
// sleep (not even SIGKILL ends it), so a command that just wrote would hang —
// with the caller's (SSM's) stdout pipe open — until that filesystem thaws.
func TestStateDirOnFrozenFilesystemRefused(t *testing.T) {
	data := loopFS(t, "xfs")
	other := loopFS(t, "ext4")
	stateDir := filepath.Join(other.Mount, "st")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := fixtureFreeze(other.Mount); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Thaw() })

	for _, args := range [][]string{
		{"freeze", "--mysql-lock", "none", "--mount", data.Mount, "--timeout", "5s", "--state-dir", stateDir},
		{"status", "--state-dir", stateDir},
		{"thaw", "--run-id", "x1", "--state-dir", stateDir},
	} {
		cmd := exec.Command(agentBin, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			other.Thaw() // the only way to end it
			<-done
			t.Fatalf("%v hung on the frozen state dir until its filesystem was thawed", args[0])
		}
		elapsed := time.Since(start)
		if code := contract.ExitCode(cmd.ProcessState.ExitCode()); code != contract.ExitBusy {
			t.Fatalf("%v: exit %d, want 3\nstdout: %s\nstderr: %s", args[0], code, out.String(), errb.String())
		}
		if elapsed > 3*time.Second {
			t.Errorf("%v took %v to refuse", args[0], elapsed)
		}
		var er contract.ErrorReport
		decodeOne(t, out.String(), &er)
		line := strings.TrimSpace(errb.String())
		if strings.Contains(line, "\n") || !strings.Contains(line, stateDir) {
			t.Fatalf("%v: stderr must be one line naming %s: %q", args[0], stateDir, line)
		}
		requireCompletes(t, writer(t, data.Mount), 2*time.Second)
	}
}
