package deploy_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The alarms on the Lambda's EMF metrics only fire if namespace, dimension
// and metric name match what the Lambda writes. Read those from its source
// (lambda/internal is not importable from here).
func TestAlarmsMatchLambdaMetrics(t *testing.T) {
	metricsFile := filepath.Join("..", "lambda", "internal", "metrics", "metrics.go")
	src, err := os.ReadFile(metricsFile)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), metricsFile, src, 0)
	if err != nil {
		t.Fatal(err)
	}
	namespace := ""
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok && len(vs.Names) == 1 && vs.Names[0].Name == "Namespace" && len(vs.Values) == 1 {
			if lit, ok := vs.Values[0].(*ast.BasicLit); ok {
				namespace, _ = strconv.Unquote(lit.Value)
			}
		}
		return true
	})
	if namespace == "" {
		t.Fatalf("%s: no Namespace constant", metricsFile)
	}
	if !strings.Contains(string(src), `{{"Stack"}}`) {
		t.Errorf("%s: the EMF dimension set is no longer [Stack]; update the template's alarms", metricsFile)
	}
	literals := lambdaStringLiterals(t)

	_, res := evaluate(t, sampleEnv)
	found := 0
	for name, raw := range res {
		r := raw.(map[string]any)
		if r["Type"] != "AWS::CloudWatch::Alarm" {
			continue
		}
		p := r["Properties"].(map[string]any)
		if p["Namespace"] == "AWS/Lambda" || p["Namespace"] == "AWS/SQS" {
			continue
		}
		found++
		if p["Namespace"] != namespace {
			t.Errorf("%s: namespace %v, the Lambda writes %q", name, p["Namespace"], namespace)
		}
		dims := p["Dimensions"].([]any)
		if len(dims) != 1 {
			t.Errorf("%s: dimensions %v, want exactly [Stack]", name, dims)
		} else if d := dims[0].(map[string]any); d["Name"] != "Stack" || d["Value"] != sampleEnv.StackName {
			t.Errorf("%s: dimension %v, want Stack=%s (QUIESCE_STACK)", name, d, sampleEnv.StackName)
		}
		metric := p["MetricName"].(string)
		if !literals[metric] {
			t.Errorf("%s: metric %q does not appear in lambda/ as a string literal", name, metric)
		}
	}
	if found < 2 {
		t.Errorf("want alarms on instances_failed and thawed_by_deadline, found %d EMF alarms", found)
	}
}

func lambdaStringLiterals(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	inspectLambdaSource(t, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if s, err := strconv.Unquote(lit.Value); err == nil {
				out[s] = true
			}
		}
		return true
	})
	return out
}
