package deploy_test

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/quiesce/quiesce/test/gotool"
)

// goListLines runs go list with args and returns its output lines.
func goListLines(args ...string) ([]string, error) {
	out, err := exec.Command(gotool.Path(), append([]string{"list"}, args...)...).Output()
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// goList returns a package's source directory as the go command resolves it
// (the module cache for SDK packages).
func goList(pkg string) (string, error) {
	lines, err := goListLines("-f", "{{.Dir}}", pkg)
	if err != nil || len(lines) != 1 {
		return "", err
	}
	return lines[0], nil
}

const module = "github.com/quiesce/quiesce"

// testOnly names the packages a shipped binary must not link: the testing
// framework, httptest servers, and (unless allowTestTree) the test/ tree.
func testOnly(deps []string, allowTestTree bool) []string {
	var bad []string
	for _, dep := range deps {
		switch {
		case dep == "testing", dep == "net/http/httptest":
			bad = append(bad, dep)
		case !allowTestTree && strings.HasPrefix(dep, module+"/test/"):
			bad = append(bad, dep)
		}
	}
	return bad
}

// outsideDemoTree lists cmd/demo's direct imports from test/ that are not the
// demo harness (test/demo/...): the binary's entry point may reach the test
// tree only through it.
func outsideDemoTree(imports []string) []string {
	var bad []string
	for _, imp := range imports {
		if strings.HasPrefix(imp, module+"/test/") && !strings.HasPrefix(imp, module+"/test/demo/") {
			bad = append(bad, imp)
		}
	}
	return bad
}

func TestTestOnlyPackagesAreNamed(t *testing.T) {
	deps := []string{"fmt", "testing", "net/http", "net/http/httptest", module + "/contract",
		module + "/test/awslocal", module + "/testdata/x"}
	if got, want := testOnly(deps, false), []string{"testing", "net/http/httptest", module + "/test/awslocal"}; !reflect.DeepEqual(got, want) {
		t.Errorf("testOnly(no test tree) = %v, want %v", got, want)
	}
	if got, want := testOnly(deps, true), []string{"testing", "net/http/httptest"}; !reflect.DeepEqual(got, want) {
		t.Errorf("testOnly(test tree allowed) = %v, want %v", got, want)
	}
	imports := []string{module + "/test/demo/harness", module + "/test/fixture", module + "/contract"}
	if got, want := outsideDemoTree(imports), []string{module + "/test/fixture"}; !reflect.DeepEqual(got, want) {
		t.Errorf("outsideDemoTree = %v, want %v", got, want)
	}
}

// TestShippedBinariesLinkNoTestCode: hostagent and the Lambda link nothing
// test-only; the demo binary links the test tree (its harness lives there)
// but neither the testing package nor httptest, and enters it only through
// test/demo.
func TestShippedBinariesLinkNoTestCode(t *testing.T) {
	for _, bin := range []struct {
		pkg           string
		allowTestTree bool
	}{
		{module + "/hostagent", false},
		{module + "/lambda", false},
		{module + "/cmd/demo", true},
	} {
		deps, err := goListLines("-deps", bin.pkg)
		if err != nil {
			t.Fatalf("go list -deps %s: %v", bin.pkg, err)
		}
		if len(deps) < 10 {
			t.Fatalf("go list -deps %s listed only %v", bin.pkg, deps)
		}
		if bad := testOnly(deps, bin.allowTestTree); len(bad) > 0 {
			t.Errorf("%s links test-only packages %v (see docs/architecture.md#layout)", bin.pkg, bad)
		}
	}
	imports, err := goListLines("-f", `{{join .Imports "\n"}}`, module+"/cmd/demo")
	if err != nil {
		t.Fatal(err)
	}
	if bad := outsideDemoTree(imports); len(bad) > 0 {
		t.Errorf("cmd/demo imports %v directly; only test/demo/... may be imported", bad)
	}
}
