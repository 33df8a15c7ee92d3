package chaos

import (
	"fmt"
	"os"
	"path/filepath"
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
	os.Exit(fixture.RunWithHostagent(m, func(bin string) { agentBin, binDir = bin, filepath.Dir(bin) }))
}
