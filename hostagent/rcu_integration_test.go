package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quiesce/quiesce/hostagent/internal/state"
	"github.com/quiesce/quiesce/test/fixture"
)

const rcuKnob = "/sys/kernel/rcu_expedited"

func readRCU(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(rcuKnob)
	if err != nil {
		t.Skipf("%s unreadable: %v", rcuKnob, err)
	}
	return strings.TrimSpace(string(b))
}

// TestExpediteRCURestoredWhenKilledMidFreeze: --expedite-rcu switches a
// machine-wide kernel knob on around FIFREEZE. When the holder (and the
// client) are SIGKILLed while it is on, the guardian must put it back, at the
// latest when it thaws at the deadline.
func TestExpediteRCURestoredWhenKilledMidFreeze(t *testing.T) {
	fixture.RequireLoopFS(t, "xfs")
	orig := readRCU(t)
	if err := os.WriteFile(rcuKnob, []byte("0\n"), 0); err != nil {
		t.Skipf("cannot write %s: %v", rcuKnob, err)
	}
	t.Cleanup(func() { os.WriteFile(rcuKnob, []byte(orig+"\n"), 0) })

	fs := loopFSAt(t, t.TempDir(), "xfs", 512, "rcu.img")
	e := newEnv(t)
	// Dirty page cache makes the syncfs inside the freeze step take long
	// enough to kill the processes while the knob is on.
	big := bytes.Repeat([]byte{0x5a}, 1<<20)
	f, err := os.Create(filepath.Join(fs.Mount, "dirty"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 380; i++ {
		if _, err := f.Write(big); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	client := exec.Command(agentBin, "freeze", "--mysql-lock", "none", "--expedite-rcu=true",
		"--mount", fs.Mount, "--timeout", "2s", "--run-id", "rcu-kill")
	client.Env = append(os.Environ(), state.EnvDir+"="+e.stateDir)
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	clientDone := make(chan struct{})
	go func() { client.Wait(); close(clientDone) }()
	t.Cleanup(func() { client.Process.Kill(); <-clientDone })

	d := &state.Dir{Path: e.stateDir}
	var run *state.Run
	for until := time.Now().Add(10 * time.Second); ; {
		if time.Now().After(until) {
			t.Fatalf("knob never switched on during the freeze (run %+v)", run)
		}
		if r, err := d.Read("rcu-kill"); err == nil {
			run = r
		}
		if run != nil && run.Holder.PID != 0 && readRCU(t) == "1" {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	syscall.Kill(client.Process.Pid, syscall.SIGKILL)
	syscall.Kill(run.Holder.PID, syscall.SIGKILL)
	<-clientDone
	waitDead(t, run.Holder.PID, 5*time.Second)
	after, err := d.Read("rcu-kill")
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != state.StatusStarting || !after.RCURestore {
		t.Skipf("the holder finished freezing before the kill (status %s); the window was missed", after.Status)
	}
	// Only the guardian is left: it must restore the knob (at the latest when
	// it thaws at the deadline).
	for until := run.Deadline.Add(2 * time.Second); readRCU(t) != "0"; {
		if time.Now().After(until) {
			t.Fatalf("%s still 1 after the guardian's deadline (%s): the machine-wide knob was left on", rcuKnob, run.Deadline.Format(time.RFC3339Nano))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if late := time.Since(run.Deadline); late > time.Second {
		t.Errorf("knob restored %v after the deadline", late)
	}
}
