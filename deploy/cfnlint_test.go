package deploy_test

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// cfn-lint validates the template against the CloudFormation and SAM
// specifications, running the SAM translator. CI does not install it (it is a Python tool); where it is
// installed, the template must pass it with informational checks included.
func TestCfnLint(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (Python start-up); skipped with -short")
	}
	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Skip("cfn-lint not installed (pip install cfn-lint)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, lint, "--include-checks", "I", "--", templatePath).CombinedOutput()
	if err != nil {
		t.Fatalf("cfn-lint: %v\n%s", err, out)
	}
}
