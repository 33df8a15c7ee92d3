package chaos

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/quiesce/quiesce/test/fixture"
)

// agentBin is the hostagent binary under test, built once by TestMain into
// binDir (removed at exit, also by the signal handler, which skips defers).
var agentBin, binDir string

// TestMain builds hostagent from this tree, as `make hostagent` does, unless
// CHAOS_HOSTAGENT names a binary to attack instead (e.g. another branch's build).
func TestMain(m *testing.M) {
	if bin := os.Getenv("CHAOS_HOSTAGENT"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		agentBin = abs
		os.Exit(m.Run())
	}
	code := func() int {
		dir, err := os.MkdirTemp("", "qchaos-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binDir = dir
		bin := filepath.Join(dir, "hostagent")
		// An interrupt during the build must not leave the temp dir behind.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			if _, ok := <-sigs; ok {
				os.RemoveAll(dir)
				os.Exit(1)
			}
		}()
		err = fixture.BuildHostagent(bin)
		signal.Stop(sigs)
		close(sigs)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		agentBin = bin
		return m.Run()
	}()
	os.Exit(code)
}
