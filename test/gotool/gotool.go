// Package gotool finds the go command for tests and tools that build or
// inspect this module, also where their PATH lacks it (a root shell, a CI
// step): PATH first, then the running toolchain's GOROOT, then the usual
// install location. Testing-free, so the demo binary may use it.
package gotool

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Path is the go command.
func Path() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := runtime.GOROOT(); root != "" {
		if p := filepath.Join(root, "bin", "go"); exists(p) {
			return p
		}
	}
	return "/usr/local/go/bin/go"
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
