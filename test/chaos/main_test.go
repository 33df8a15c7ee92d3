package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
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
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		// Built as `make hostagent` builds it: the binary under test is the one shipped.
		cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "../../hostagent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		// An interrupt during the build must not leave the temp dir behind.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			if _, ok := <-sigs; ok {
				os.RemoveAll(dir)
				os.Exit(1)
			}
		}()
		out, err := cmd.CombinedOutput()
		signal.Stop(sigs)
		close(sigs)
		if err != nil {
			fmt.Fprintf(os.Stderr, "build hostagent: %v\n%s", err, out)
			return 1
		}
		agentBin = bin
		return m.Run()
	}()
	os.Exit(code)
}
