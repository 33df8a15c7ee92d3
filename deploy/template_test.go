package deploy_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"gopkg.in/yaml.v3"

	"github.com/quiesce/quiesce/deploy"
	"github.com/quiesce/quiesce/ssmdoc"
)

const templatePath = "../template.yaml"

// optInTagKey is the fixed tag key instances opt in with. It is a literal in
// the IAM condition key (ssm:resourceTag/quiesce:enabled), the schedule's
// targets.tags and the function's QUIESCE_TARGET_TAG_KEY; only its value is a
// parameter (TargetTagValue).
const optInTagKey = "quiesce:enabled"

var updateTemplate = flag.Bool("update-template", false, "rewrite the SSM document Content blocks in template.yaml from ssmdoc/*.yaml")

// sampleParams are deliberately unlike the defaults, so a test can tell a
// parameter that is wired through from a hard-coded default.
var sampleParams = map[string]string{
	"ScheduleExpression": "cron(15 3 * * ? *)",
	"ScheduleTimezone":   "Europe/Berlin",
	"ScheduleEnabled":    "false",
	"TargetTagValue":     "nightly",
	"Mounts":             "/data/mysql,/data/binlog",
	"MysqlLock":          "backup-stage",
	"MysqlDefaultsFile":  "/etc/quiesce/my.cnf",
	"FreezeTimeout":      "45s",
	"KeepLast":           "7",
	"MaxAge":             "168h",
	"MaxConcurrency":     "25",
	"FunctionTimeout":    "600",
	"AlarmEmail":         "dba@example.com",
	"LogRetentionDays":   "90",
	// Restore verification.
	"VerifyScheduleExpression": "rate(2 hours)",
	"VerifyScheduleEnabled":    "true",
	"VerifierTagValue":         "db-verifier",
	"VerifyEvery":              "7d",
	"VerifyMaxHours":           "12",
	"VerifyCheckSql":           "/etc/quiesce/verify.sql",
}

var sampleEnv = deploy.Env{
	Params: sampleParams, StackName: "db-snaps", Region: "eu-central-1",
	AccountID: "111122223333", Partition: "aws",
}

func readTemplate(t *testing.T) deploy.Template {
	t.Helper()
	tpl, err := deploy.ReadTemplate(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

func evaluate(t *testing.T, env deploy.Env) (*deploy.Evaluator, map[string]any) {
	t.Helper()
	tpl := readTemplate(t)
	ev, err := deploy.NewEvaluator(tpl, env)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ev.Eval(tpl["Resources"])
	if err != nil {
		t.Fatalf("evaluate Resources: %v", err)
	}
	return ev, res.(map[string]any)
}

func get(t *testing.T, v any, path ...string) any {
	t.Helper()
	for i, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: not a mapping", strings.Join(path[:i], "."))
		}
		if v, ok = m[p]; !ok {
			t.Fatalf("%s: missing", strings.Join(path[:i+1], "."))
		}
	}
	return v
}

// `sam deploy --guided` must work as is: only the SAM transform, so no
// CAPABILITY_AUTO_EXPAND (AWS::LanguageExtensions or macros need it), and no
// intrinsic the plain CloudFormation engine does not know.
func TestTemplateNeedsNoAutoExpand(t *testing.T) {
	raw := readTemplate(t)
	if raw["Transform"] != "AWS::Serverless-2016-10-31" {
		t.Errorf("Transform = %v, want exactly AWS::Serverless-2016-10-31", raw["Transform"])
	}
	if _, ok := raw["Parameters"].(map[string]any)["TargetTagKey"]; ok {
		t.Errorf("parameter TargetTagKey is back: the opt-in key is fixed (%s)", optInTagKey)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, it := range x {
				if strings.HasPrefix(k, "Fn::ForEach") || k == "Fn::ToJsonString" || k == "Fn::Length" {
					t.Errorf("%s: %s needs the AWS::LanguageExtensions transform", path, k)
				}
				walk(path+"."+k, it)
			}
		case []any:
			for i, it := range x {
				walk(path+"["+strconv.Itoa(i)+"]", it)
			}
		}
	}
	walk("template", map[string]any(raw))
}

// The typed view, as AWS tooling sees it.
func TestTemplateTyped(t *testing.T) {
	tpl, err := goformation.Open(templatePath)
	if err != nil {
		t.Fatalf("goformation: %v", err)
	}
	fn, err := tpl.GetServerlessFunctionWithName("QuiesceFunction")
	if err != nil {
		t.Fatal(err)
	}
	if fn.Runtime == nil || *fn.Runtime != "provided.al2023" {
		t.Errorf("Runtime = %v", str(fn.Runtime))
	}
	if !reflect.DeepEqual(fn.Architectures, []string{"arm64"}) {
		t.Errorf("Architectures = %v", fn.Architectures)
	}
	if fn.Handler == nil || *fn.Handler != "bootstrap" {
		t.Errorf("Handler = %v", str(fn.Handler))
	}
	if fn.MemorySize == nil || *fn.MemorySize != 256 {
		t.Errorf("MemorySize = %v", fn.MemorySize)
	}
	// goformation resolves Ref to a parameter's default.
	if fn.Timeout == nil || *fn.Timeout != 900 {
		t.Errorf("Timeout = %v, want the FunctionTimeout default 900", fn.Timeout)
	}
	if fn.AWSCloudFormationMetadata["BuildMethod"] != "makefile" {
		t.Errorf("Metadata.BuildMethod = %v (sam build must run `make build-QuiesceFunction`)", fn.AWSCloudFormationMetadata["BuildMethod"])
	}
	if fn.CodeUri == nil || fn.CodeUri.String == nil || *fn.CodeUri.String != "." {
		t.Errorf("CodeUri must be the repository root (the Makefile is there)")
	}
	for _, name := range []string{"Schedule", "VerifySchedule"} {
		if ev, ok := fn.Events[name]; !ok || ev.Type != "ScheduleV2" {
			t.Errorf("Events = %v, want %s of type ScheduleV2", fn.Events, name)
		}
	}
	if len(fn.Events) != 2 {
		t.Errorf("unexpected events: %v", fn.Events)
	}
	eic := fn.EventInvokeConfig
	if eic == nil || eic.MaximumRetryAttempts == nil || *eic.MaximumRetryAttempts != 0 {
		t.Fatalf("EventInvokeConfig.MaximumRetryAttempts must be 0: %+v", eic)
	}
	if eic.DestinationConfig == nil || eic.DestinationConfig.OnFailure == nil ||
		eic.DestinationConfig.OnFailure.Type == nil || *eic.DestinationConfig.OnFailure.Type != "SQS" {
		t.Errorf("EventInvokeConfig needs an SQS on-failure destination: %+v", eic.DestinationConfig)
	}
	vars := fn.Environment.Variables
	for k, want := range map[string]string{
		"QUIESCE_TARGET_TAG_KEY": "quiesce:enabled", "QUIESCE_TARGET_TAG_VALUE": "true",
		"QUIESCE_MOUNTS": "/var/lib/mysql", "QUIESCE_MYSQL_LOCK": "auto", "QUIESCE_MYSQL_DEFAULTS_FILE": "",
		"QUIESCE_FREEZE_TIMEOUT": "30s", "QUIESCE_KEEP_LAST": "14", "QUIESCE_MAX_AGE": "720h",
		"QUIESCE_MAX_CONCURRENCY": "10", "QUIESCE_STACK": "goformation-stack",
	} {
		if got, ok := vars[k]; !ok || got != want {
			t.Errorf("env %s = %q (set %v), want %q", k, got, ok, want)
		}
	}
	if _, ok := vars["QUIESCE_DOCUMENT"]; !ok {
		t.Errorf("env QUIESCE_DOCUMENT missing")
	}

	alarms := tpl.GetAllCloudWatchAlarmResources()
	errAlarm, ok := alarms["FunctionErrorsAlarm"]
	if !ok || errAlarm.Namespace == nil || *errAlarm.Namespace != "AWS/Lambda" || *errAlarm.MetricName != "Errors" {
		t.Fatalf("FunctionErrorsAlarm on AWS/Lambda Errors missing: %+v", errAlarm)
	}
	if len(errAlarm.AlarmActions) != 1 {
		t.Errorf("FunctionErrorsAlarm actions = %v", errAlarm.AlarmActions)
	}
	if _, ok := alarms["InstancesFailedAlarm"]; !ok {
		t.Errorf("alarm on the instances_failed EMF metric missing")
	}
	if len(tpl.GetAllSNSTopicResources()) != 1 {
		t.Errorf("want exactly one SNS topic")
	}
	sub, err := tpl.GetSNSSubscriptionWithName("AlarmEmailSubscription")
	if err != nil {
		t.Fatal(err)
	}
	if sub.Protocol != "email" || sub.AWSCloudFormationCondition != "HasAlarmEmail" {
		t.Errorf("AlarmEmailSubscription: protocol %q condition %q", sub.Protocol, sub.AWSCloudFormationCondition)
	}
	lg, err := tpl.GetLogsLogGroupWithName("QuiesceLogGroup")
	if err != nil {
		t.Fatal(err)
	}
	if lg.RetentionInDays == nil || *lg.RetentionInDays != 30 {
		t.Errorf("log retention = %v", lg.RetentionInDays)
	}
	for _, name := range []string{"QuiesceDocument", "InstallHostagentDocument", "VerifyDocument"} {
		doc, err := tpl.GetSSMDocumentWithName(name)
		if err != nil {
			t.Fatal(err)
		}
		if str(doc.DocumentType) != "Command" || str(doc.DocumentFormat) != "YAML" {
			t.Errorf("%s: type %s format %s", name, str(doc.DocumentType), str(doc.DocumentFormat))
		}
	}
	checkOutputs(t, tpl)
}

func checkOutputs(t *testing.T, tpl *cloudformation.Template) {
	t.Helper()
	for _, name := range []string{"FunctionName", "FunctionArn", "QuiesceDocumentName", "InstallDocumentName", "VerifyDocumentName", "AlarmTopicArn"} {
		if _, ok := tpl.Outputs[name]; !ok {
			t.Errorf("output %s missing", name)
		}
	}
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// designEvent is the Lambda event shape in DESIGN.md ("lambda").
type designEvent struct {
	Targets struct {
		InstanceIDs []string          `json:"instance_ids"`
		Tags        map[string]string `json:"tags"`
	} `json:"targets"`
	Mounts []string `json:"mounts"`
	MySQL  struct {
		Lock         string `json:"lock"`
		DefaultsFile string `json:"defaults_file"`
	} `json:"mysql"`
	FreezeTimeout string            `json:"freeze_timeout"`
	SnapshotTags  map[string]string `json:"snapshot_tags"`
	Retention     struct {
		KeepLast int    `json:"keep_last"`
		MaxAge   string `json:"max_age"`
	} `json:"retention"`
	MaxConcurrency int  `json:"max_concurrency"`
	DryRun         bool `json:"dry_run"`
}

// ScheduleV2 properties (dropped by goformation) from the raw template,
// evaluated with sample parameters: the schedule and the event it sends.
func TestScheduleWiredToParameters(t *testing.T) {
	raw := readTemplate(t)
	rawSched := get(t, raw.Resource("QuiesceFunction"), "Properties", "Events", "Schedule", "Properties").(map[string]any)
	// SAM ScheduleV2 property names; anything else is a typo SAM would reject.
	known := map[string]bool{"ScheduleExpression": true, "ScheduleExpressionTimezone": true, "State": true, "Input": true,
		"FlexibleTimeWindow": true, "RetryPolicy": true, "Description": true, "OmitName": true, "Name": true,
		"DeadLetterConfig": true, "GroupName": true, "StartDate": true, "EndDate": true, "KmsKeyArn": true,
		"RoleArn": true, "PermissionsBoundary": true}
	for k := range rawSched {
		if !known[k] {
			t.Errorf("unknown ScheduleV2 property %s", k)
		}
	}
	if !reflect.DeepEqual(rawSched["ScheduleExpression"], map[string]any{"Ref": "ScheduleExpression"}) {
		t.Errorf("ScheduleExpression = %v, want !Ref ScheduleExpression", rawSched["ScheduleExpression"])
	}

	for _, tc := range []struct {
		name    string
		env     deploy.Env
		enabled string
	}{
		{"sample parameters", sampleEnv, "DISABLED"},
		{"defaults", deploy.Env{StackName: "s", Region: "us-east-1", AccountID: "111122223333", Partition: "aws"}, "ENABLED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, res := evaluate(t, tc.env)
			sched := get(t, res, "QuiesceFunction", "Properties", "Events", "Schedule", "Properties").(map[string]any)
			if sched["ScheduleExpression"] != ev.Param("ScheduleExpression") ||
				sched["ScheduleExpressionTimezone"] != ev.Param("ScheduleTimezone") || sched["State"] != tc.enabled {
				t.Errorf("schedule = %v / %v / %v", sched["ScheduleExpression"], sched["ScheduleExpressionTimezone"], sched["State"])
			}
			if sched["OmitName"] != true {
				t.Errorf("OmitName must be true so two stacks do not collide on the schedule name")
			}
			input, ok := sched["Input"].(string)
			if !ok {
				t.Fatalf("Input is %T", sched["Input"])
			}
			dec := json.NewDecoder(strings.NewReader(input))
			dec.DisallowUnknownFields()
			var e designEvent
			if err := dec.Decode(&e); err != nil {
				t.Fatalf("schedule Input is not the DESIGN event: %v\n%s", err, input)
			}
			if !reflect.DeepEqual(e.Targets.Tags, map[string]string{optInTagKey: ev.Param("TargetTagValue")}) {
				t.Errorf("targets.tags = %v, want {%s: %s}", e.Targets.Tags, optInTagKey, ev.Param("TargetTagValue"))
			}
			if strings.Join(e.Mounts, ",") != ev.Param("Mounts") {
				t.Errorf("mounts = %q, want %s", e.Mounts, ev.Param("Mounts"))
			}
			if e.MySQL.Lock != ev.Param("MysqlLock") || e.MySQL.DefaultsFile != ev.Param("MysqlDefaultsFile") {
				t.Errorf("mysql = %+v", e.MySQL)
			}
			if e.FreezeTimeout != ev.Param("FreezeTimeout") || e.Retention.MaxAge != ev.Param("MaxAge") ||
				itoa(e.Retention.KeepLast) != ev.Param("KeepLast") || itoa(e.MaxConcurrency) != ev.Param("MaxConcurrency") {
				t.Errorf("event = %+v", e)
			}
			if e.DryRun {
				t.Errorf("scheduled run must not be a dry run")
			}
			// Every event value must also pass the SSM document's own
			// patterns, or the Lambda would send something the agent refuses.
			doc, err := ssmdoc.Quiesce()
			if err != nil {
				t.Fatal(err)
			}
			for name, v := range map[string]string{"mounts": strings.Join(e.Mounts, ","), "mysqlLock": e.MySQL.Lock,
				"mysqlDefaultsFile": e.MySQL.DefaultsFile, "timeout": e.FreezeTimeout} {
				if err := doc.Validate(name, v); err != nil {
					t.Errorf("event value rejected by the document: %v", err)
				}
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// Parameters must not break out of the JSON string the schedule Input puts
// them in, nor of the SSM document's patterns.
func TestTemplateParameterPatterns(t *testing.T) {
	raw := readTemplate(t)
	params := raw["Parameters"].(map[string]any)
	for _, name := range []string{"TargetTagValue", "Mounts", "MysqlDefaultsFile", "FreezeTimeout", "MaxAge", "AlarmEmail", "ScheduleExpression", "ScheduleTimezone",
		"VerifyScheduleExpression", "VerifierTagValue", "VerifyEvery", "VerifyCheckSql"} {
		p := params[name].(map[string]any)
		pat, _ := p["AllowedPattern"].(string)
		if pat == "" {
			t.Errorf("%s: no AllowedPattern", name)
			continue
		}
		re, err := regexp.Compile(pat)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if d := p["Default"]; !re.MatchString(d.(string)) {
			t.Errorf("%s: default %q fails its own pattern", name, d)
		}
		for _, bad := range []string{`a"b`, `a\b`, "a\nb", `${AWS::StackName}`, `x","y`} {
			if re.MatchString(bad) {
				t.Errorf("%s accepts %q, which would break the schedule's JSON input", name, bad)
			}
		}
	}
	// What the template accepts for Mounts/MysqlDefaultsFile/FreezeTimeout the document must accept.
	doc, err := ssmdoc.Quiesce()
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]string{{"Mounts", "mounts"}, {"MysqlDefaultsFile", "mysqlDefaultsFile"}, {"FreezeTimeout", "timeout"}} {
		re := regexp.MustCompile(params[pair[0]].(map[string]any)["AllowedPattern"].(string))
		for _, v := range []string{"/var/lib/mysql", "/a,/b", "/etc/q.cnf", "30s", "500ms", "2m", "/..", "/a;b", "-1s"} {
			if re.MatchString(v) {
				if err := doc.Validate(pair[1], v); err != nil {
					t.Errorf("template %s accepts %q but the document does not: %v", pair[0], v, err)
				}
			}
		}
	}
	mysqlLock := params["MysqlLock"].(map[string]any)["AllowedValues"].([]any)
	var got []string
	for _, v := range mysqlLock {
		got = append(got, v.(string))
	}
	if strings.Join(got, ",") != strings.Join(doc.Parameters["mysqlLock"].AllowedValues, ",") {
		t.Errorf("MysqlLock values %v differ from the document's %v", got, doc.Parameters["mysqlLock"].AllowedValues)
	}
}

func TestTemplateEnvironmentWiring(t *testing.T) {
	_, res := evaluate(t, sampleEnv)
	vars := get(t, res, "QuiesceFunction", "Properties", "Environment", "Variables").(map[string]any)
	want := map[string]string{
		"QUIESCE_DOCUMENT": "ref:QuiesceDocument", "QUIESCE_STACK": "db-snaps",
		"QUIESCE_TARGET_TAG_KEY": optInTagKey, "QUIESCE_TARGET_TAG_VALUE": "nightly",
		"QUIESCE_MOUNTS": "/data/mysql,/data/binlog", "QUIESCE_MYSQL_LOCK": "backup-stage",
		"QUIESCE_MYSQL_DEFAULTS_FILE": "/etc/quiesce/my.cnf", "QUIESCE_FREEZE_TIMEOUT": "45s",
		"QUIESCE_KEEP_LAST": "7", "QUIESCE_MAX_AGE": "168h", "QUIESCE_MAX_CONCURRENCY": "25",
		"QUIESCE_VERIFY_DOCUMENT": "ref:VerifyDocument", "QUIESCE_VERIFIER_TAG_VALUE": "db-verifier",
		"QUIESCE_VERIFY_EVERY": "7d", "QUIESCE_VERIFY_MAX_HOURS": "12", "QUIESCE_VERIFY_CHECK_SQL": "/etc/quiesce/verify.sql",
	}
	for k, w := range want {
		if vars[k] != w {
			t.Errorf("%s = %v, want %s", k, vars[k], w)
		}
	}
	if len(vars) != len(want) {
		t.Errorf("environment has %d variables, want %d: %v", len(vars), len(want), vars)
	}
	fn := get(t, res, "QuiesceFunction", "Properties").(map[string]any)
	if fn["Timeout"] != "600" {
		t.Errorf("Timeout = %v, want the FunctionTimeout parameter", fn["Timeout"])
	}
	if d := get(t, fn, "EventInvokeConfig", "DestinationConfig", "OnFailure", "Destination"); d != "getatt:FailedInvocationsQueue.Arn" {
		t.Errorf("on-failure destination = %v", d)
	}
	lg := get(t, res, "QuiesceLogGroup", "Properties").(map[string]any)
	if lg["LogGroupName"] != "/aws/lambda/ref:QuiesceFunction" || lg["RetentionInDays"] != "90" {
		t.Errorf("log group = %v", lg)
	}
	errAlarm := get(t, res, "FunctionErrorsAlarm", "Properties").(map[string]any)
	if !reflect.DeepEqual(errAlarm["AlarmActions"], []any{"ref:AlarmTopic"}) {
		t.Errorf("errors alarm actions = %v", errAlarm["AlarmActions"])
	}
	dims := errAlarm["Dimensions"].([]any)[0].(map[string]any)
	if dims["Name"] != "FunctionName" || dims["Value"] != "ref:QuiesceFunction" {
		t.Errorf("errors alarm dimension = %v", dims)
	}
	sub := get(t, res, "AlarmEmailSubscription", "Properties").(map[string]any)
	if sub["Endpoint"] != "dba@example.com" || sub["TopicArn"] != "ref:AlarmTopic" {
		t.Errorf("subscription = %v", sub)
	}
}

func TestAlarmEmailCondition(t *testing.T) {
	tpl := readTemplate(t)
	for email, want := range map[string]bool{"": false, "ops@example.com": true} {
		ev, err := deploy.NewEvaluator(tpl, deploy.Env{Params: map[string]string{"AlarmEmail": email}, StackName: "s"})
		if err != nil {
			t.Fatal(err)
		}
		if ev.Condition("HasAlarmEmail") != want {
			t.Errorf("AlarmEmail %q: HasAlarmEmail = %v", email, !want)
		}
	}
}

// The documents in the template are the standalone files, verbatim.
func TestTemplateDocumentsMatch(t *testing.T) {
	if *updateTemplate {
		rewriteTemplateDocuments(t)
	}
	raw := readTemplate(t)
	for resName, docYAML := range map[string][]byte{
		"QuiesceDocument": ssmdoc.QuiesceDocument(), "InstallHostagentDocument": ssmdoc.InstallDocument(),
		"VerifyDocument": ssmdoc.VerifyDocument(),
	} {
		inTemplate := get(t, raw.Resource(resName), "Properties", "Content")
		var standalone any
		if err := yaml.Unmarshal(docYAML, &standalone); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalize(inTemplate), normalize(standalone)) {
			t.Errorf("%s Content differs from its ssmdoc file; run: go test ./deploy -run TestTemplateDocumentsMatch -update-template", resName)
		}
		// And the template's copy loads as a valid document by itself.
		b, err := yaml.Marshal(inTemplate)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ssmdoc.Load(b); err != nil {
			t.Errorf("%s Content: %v", resName, err)
		}
	}
}

// normalize makes yaml.v3's map[string]interface{} trees comparable with the
// evaluator's (identical types already; this also maps ints to int).
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, it := range x {
			out[k] = normalize(it)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, it := range x {
			out[i] = normalize(it)
		}
		return out
	}
	return v
}

// rewriteTemplateDocuments copies ssmdoc/*.yaml between the BEGIN/END marker
// comments in template.yaml, indented under Content:.
func rewriteTemplateDocuments(t *testing.T) {
	b, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		marker string
		body   []byte
	}{{"ssmdoc/quiesce-command.yaml", ssmdoc.QuiesceDocument()}, {"ssmdoc/install-hostagent.yaml", ssmdoc.InstallDocument()},
		{"ssmdoc/quiesce-verify.yaml", ssmdoc.VerifyDocument()}} {
		re := regexp.MustCompile(`(?s)\n( *)# BEGIN ` + regexp.QuoteMeta(f.marker) + `\n.*?\n *# END ` + regexp.QuoteMeta(f.marker) + `\n`)
		m := re.FindSubmatchIndex(b)
		if m == nil {
			t.Fatalf("markers for %s not found in template.yaml", f.marker)
		}
		indent := string(b[m[2]:m[3]])
		var block bytes.Buffer
		block.WriteString("\n" + indent + "# BEGIN " + f.marker + "\n")
		for _, line := range strings.SplitAfter(string(f.body), "\n") {
			if strings.TrimSpace(line) != "" {
				block.WriteString(indent)
			}
			block.WriteString(line)
		}
		if !bytes.HasSuffix(block.Bytes(), []byte("\n")) {
			block.WriteString("\n")
		}
		block.WriteString(indent + "# END " + f.marker + "\n")
		b = append(append(append([]byte(nil), b[:m[0]]...), block.Bytes()...), b[m[1]:]...)
	}
	if err := os.WriteFile(templatePath, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
