package deploy_test

import (
	"testing"

	"github.com/quiesce/quiesce/deploy"
)

// The clone target's role tag value may not be the verifier's: IAM keys
// each action's instance grant on the value alone, so equal values would
// make every verifier a clone target and the other way round.
func TestCloneTargetRoleIsNotTheVerifiers(t *testing.T) {
	tpl := readTemplate(t)
	rules, ok := tpl["Rules"].(map[string]any)
	if !ok {
		t.Fatal("template has no Rules section")
	}
	rule := get(t, rules, "CloneTargetIsNotAVerifier").(map[string]any)
	assertions, _ := rule["Assertions"].([]any)
	if len(assertions) != 1 {
		t.Fatalf("CloneTargetIsNotAVerifier: want one assertion, got %v", rule["Assertions"])
	}
	assertion := assertions[0].(map[string]any)["Assert"]
	for _, tc := range []struct {
		name   string
		params map[string]string
		want   bool
	}{
		{"defaults", nil, true},
		{"distinct values", map[string]string{"VerifierTagValue": "v", "CloneTargetTagValue": "c"}, true},
		{"clone target is the verifier", map[string]string{"VerifierTagValue": "db", "CloneTargetTagValue": "db"}, false},
		{"clone target is the default verifier", map[string]string{"CloneTargetTagValue": "verifier"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := deploy.NewEvaluator(tpl, deploy.Env{Params: tc.params, StackName: "s", Region: "us-east-1", AccountID: "111122223333", Partition: "aws"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := ev.Eval(assertion)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("assertion = %v, want %v", got, tc.want)
			}
		})
	}
}
