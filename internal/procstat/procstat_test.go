package procstat

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestReadSelf(t *testing.T) {
	start, st, err := Read(os.Getpid())
	if err != nil || start == 0 || st != 'R' {
		t.Fatalf("Read(self) = %d, %q, %v; want a start time and state R", start, st, err)
	}
	again, _, _ := Read(os.Getpid())
	if again != start {
		t.Fatalf("start time changed: %d then %d", start, again)
	}
}

func TestReadZombieAndGone(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Not yet reaped: once it has exited it is a zombie.
	for i := 0; ; i++ {
		_, st, err := Read(pid)
		if err != nil {
			t.Fatal(err)
		}
		if st == 'Z' {
			break
		}
		if i == 1000 {
			t.Fatalf("child still in state %q", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Wait()
	if _, _, err := Read(pid); err == nil {
		t.Fatal("Read of a reaped pid succeeded")
	}
}
