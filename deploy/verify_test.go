package deploy_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/quiesce/quiesce/deploy"
	"github.com/quiesce/quiesce/ssmdoc"
)

// verifyEvent is the Lambda's verify event (README "Verify restores").
type verifyEvent struct {
	Action  string `json:"action"`
	Targets struct {
		Tags map[string]string `json:"tags"`
	} `json:"targets"`
	Verify struct {
		VerifierTag string `json:"verifier_tag"`
		Every       string `json:"every"`
		MaxHours    int    `json:"max_hours"`
		CheckSQL    string `json:"check_sql"`
	} `json:"verify"`
}

// The verify schedule sends the verify action with the stack's parameters,
// is disabled until asked for, and its values pass the verify document.
func TestVerifyScheduleWiredToParameters(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   deploy.Env
		state string
	}{
		{"sample parameters", sampleEnv, "ENABLED"},
		{"defaults", deploy.Env{StackName: "s", Region: "us-east-1", AccountID: "111122223333", Partition: "aws"}, "DISABLED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, res := evaluate(t, tc.env)
			sched := get(t, res, "QuiesceFunction", "Properties", "Events", "VerifySchedule", "Properties").(map[string]any)
			if sched["ScheduleExpression"] != ev.Param("VerifyScheduleExpression") || sched["State"] != tc.state || sched["OmitName"] != true {
				t.Errorf("verify schedule = %v", sched)
			}
			if rp := sched["RetryPolicy"].(map[string]any); rp["MaximumRetryAttempts"] != "0" && rp["MaximumRetryAttempts"] != 0 {
				t.Errorf("verify schedule retries: %v", rp)
			}
			dec := json.NewDecoder(strings.NewReader(sched["Input"].(string)))
			dec.DisallowUnknownFields()
			var e verifyEvent
			if err := dec.Decode(&e); err != nil {
				t.Fatalf("verify Input: %v\n%s", err, sched["Input"])
			}
			if e.Action != "verify" || e.Targets.Tags[optInTagKey] != ev.Param("TargetTagValue") || len(e.Targets.Tags) != 1 ||
				e.Verify.VerifierTag != ev.Param("VerifierTagValue") || e.Verify.Every != ev.Param("VerifyEvery") ||
				strconv.Itoa(e.Verify.MaxHours) != ev.Param("VerifyMaxHours") || e.Verify.CheckSQL != ev.Param("VerifyCheckSql") {
				t.Errorf("verify event = %+v", e)
			}
			doc, err := ssmdoc.Verify()
			if err != nil {
				t.Fatal(err)
			}
			if err := doc.Validate("checkSql", e.Verify.CheckSQL); err != nil {
				t.Errorf("the verify document refuses the check SQL path: %v", err)
			}
		})
	}
}

// The longest VerifyMaxHours fits the verify document's step timeout.
func TestVerifyMaxHoursFitsTheDocument(t *testing.T) {
	raw := readTemplate(t)
	p := raw["Parameters"].(map[string]any)["VerifyMaxHours"].(map[string]any)
	maxHours, _ := strconv.Atoi(strings.TrimSpace(toString(p["MaxValue"])))
	doc, err := ssmdoc.Verify()
	if err != nil {
		t.Fatal(err)
	}
	secs, _ := strconv.Atoi(toString(doc.MainSteps[0].Inputs.TimeoutSeconds))
	if maxHours < 1 || maxHours*3600 > secs {
		t.Errorf("VerifyMaxHours MaxValue %v h exceeds the document's timeoutSeconds %v", p["MaxValue"], doc.MainSteps[0].Inputs.TimeoutSeconds)
	}
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.Itoa(int(x))
	}
	return ""
}
