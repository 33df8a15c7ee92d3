package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// goList returns a package's source directory as the go command resolves it
// (the module cache for SDK packages).
func goList(pkg string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, statErr := os.Stat(goBin); statErr != nil {
			goBin = "/usr/local/go/bin/go"
		}
	}
	out, err := exec.Command(goBin, "list", "-f", "{{.Dir}}", pkg).Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
