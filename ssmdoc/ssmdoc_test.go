package ssmdoc_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/quiesce/quiesce/ssmdoc"
)

// documents are the documents this package ships, by the name a failed
// load reports.
var documents = map[string]func() (*ssmdoc.Document, error){
	"Quiesce": ssmdoc.Quiesce,
	"verify":  ssmdoc.Verify,
	"clone":   ssmdoc.Clone,
	"install": ssmdoc.Install,
}

// mustLoad loads one of the shipped documents or fails the test.
func mustLoad(t *testing.T, name string) *ssmdoc.Document {
	t.Helper()
	d, err := documents[name]()
	if err != nil {
		t.Fatalf("load %s document: %v", name, err)
	}
	return d
}

// shellDoc is a one-step aws:runShellScript document with the given
// parameters block (indented YAML) and commands.
func shellDoc(params string, commands ...string) string {
	doc := "schemaVersion: \"2.2\"\ndescription: x\nparameters:\n" + params +
		"mainSteps:\n  - action: aws:runShellScript\n    name: s\n    inputs:\n      runCommand:\n"
	for _, c := range commands {
		doc += "        - " + c + "\n"
	}
	return doc
}

// The parameters the Lambda sends (contract.CommandParams), as declared.
func TestQuiesceParameterContract(t *testing.T) {
	d := mustLoad(t, "Quiesce")
	want := map[string]struct {
		def     *string
		allowed []string
	}{
		"action":            {nil, []string{"freeze", "thaw", "check", "status"}},
		"mounts":            {ptr(""), nil},
		"mysqlLock":         {ptr("auto"), []string{"auto", "ftwrl", "backup-stage", "instance", "replica", "none"}},
		"mysqlDefaultsFile": {ptr(""), nil},
		"lockWait":          {ptr("5s"), nil},
		"longQueryLimit":    {ptr("10s"), nil},
		"timeout":           {ptr("30s"), nil},
		"killLongQueries":   {ptr("false"), []string{"true", "false"}},
		"runId":             {ptr(""), nil},
	}
	if got := d.ParameterNames(); len(got) != len(want) {
		t.Fatalf("parameters = %v, want exactly %d", got, len(want))
	}
	for name, w := range want {
		p, ok := d.Parameters[name]
		if !ok {
			t.Errorf("parameter %s missing", name)
			continue
		}
		if p.Type != "String" {
			t.Errorf("%s: type %q", name, p.Type)
		}
		if p.InterpolationType != ssmdoc.InterpolationEnvVar {
			t.Errorf("%s: interpolationType %q, want ENV_VAR", name, p.InterpolationType)
		}
		if (w.def == nil) != (p.Default == nil) || (w.def != nil && *w.def != *p.Default) {
			t.Errorf("%s: default %v, want %v", name, deref(p.Default), deref(w.def))
		}
		if w.allowed != nil && strings.Join(p.AllowedValues, ",") != strings.Join(w.allowed, ",") {
			t.Errorf("%s: allowedValues %v, want %v", name, p.AllowedValues, w.allowed)
		}
		if w.allowed == nil && p.AllowedPattern == "" {
			t.Errorf("%s: free-form parameter without allowedPattern", name)
		}
		if p.AllowedPattern != "" && !(strings.HasPrefix(p.AllowedPattern, "^") && strings.HasSuffix(p.AllowedPattern, "$")) {
			t.Errorf("%s: allowedPattern %q must be anchored with ^...$ (the agent uses MatchString)", name, p.AllowedPattern)
		}
	}
}

// No parameter is interpolated into the script text: values only arrive as
// environment variables, and the script only expands them inside quotes.
func TestDocumentsHaveNoTextInterpolation(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  []byte
	}{{"quiesce", ssmdoc.QuiesceDocument()}, {"install", ssmdoc.InstallDocument()}, {"verify", ssmdoc.VerifyDocument()}} {
		d, err := ssmdoc.Load(tc.doc)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if refs := d.References(); len(refs) != 0 {
			t.Errorf("%s: script references %v as {{ }}; every parameter must be used via $SSM_<name> only", tc.name, refs)
		}
		for _, name := range d.ParameterNames() {
			if d.Parameters[name].InterpolationType != ssmdoc.InterpolationEnvVar {
				t.Errorf("%s: parameter %s is not ENV_VAR", tc.name, name)
			}
		}
		script := strings.Join(d.MainSteps[0].Inputs.RunCommand, "\n")
		if !strings.HasPrefix(script, "#!/bin/bash\n") {
			t.Errorf("%s: script must start with #!/bin/bash (the agent runs it via sh -c <file>)", tc.name)
		}
		// Every $SSM_x / ${SSM_x} expansion must sit inside double quotes.
		// Check line by line: the text before the expansion has an odd
		// number of unescaped double quotes.
		ref := regexp.MustCompile(`\$\{?SSM_`)
		for i, line := range strings.Split(script, "\n") {
			trimmed := strings.TrimSpace(line)
			if strings.HasPrefix(trimmed, "#") {
				continue
			}
			for _, loc := range ref.FindAllStringIndex(line, -1) {
				if strings.Count(line[:loc[0]], `"`)%2 != 1 {
					t.Errorf("%s: line %d expands an SSM_ variable outside double quotes: %s", tc.name, i+1, trimmed)
				}
			}
		}
		if strings.Contains(script, "eval ") {
			t.Errorf("%s: script uses eval", tc.name)
		}
	}
}

func TestLoadRejects(t *testing.T) {
	base := shellDoc(`  a:
    type: String
    default: ok
    allowedPattern: '^[a-z]+$'
    interpolationType: ENV_VAR
`, `echo "$SSM_a"`)
	if _, err := ssmdoc.Load([]byte(base)); err != nil {
		t.Fatalf("base document: %v", err)
	}
	cases := map[string]struct{ old, new, want string }{
		"schema 0.3":          {`"2.2"`, `"0.3"`, "schemaVersion"},
		"bad pattern":         {`'^[a-z]+$'`, `'^(?=a)$'`, "allowedPattern"},
		"default mismatch":    {`default: ok`, `default: "OK!"`, "default"},
		"undeclared ref":      {`echo "$SSM_a"`, `echo {{ b }}`, "undeclared parameter \"b\""},
		"parameter store ref": {`echo "$SSM_a"`, `echo {{ssm:/x}}`, "Parameter Store"},
		"other plugin":        {`aws:runShellScript`, `aws:runPowerShellScript`, "aws:runShellScript"},
		"StringList type":     {`type: String`, `type: StringList`, "only String"},
		"other interpolation": {`ENV_VAR`, `TEXT`, "interpolationType"},
		"unknown field":       {`    default: ok`, "    default: ok\n    bogus: 1", "bogus"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			doc := strings.Replace(base, c.old, c.new, 1)
			_, err := ssmdoc.Load([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load error = %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

func TestRenderDefaultsAndEnv(t *testing.T) {
	d := mustLoad(t, "Quiesce")
	script, env, err := d.Render(map[string]string{"action": "status"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"SSM_action=status", "SSM_killLongQueries=false", "SSM_lockWait=5s", "SSM_longQueryLimit=10s",
		"SSM_mounts=", "SSM_mysqlDefaultsFile=", "SSM_mysqlLock=auto", "SSM_runId=", "SSM_timeout=30s",
	}
	if strings.Join(env, "\n") != strings.Join(want, "\n") {
		t.Errorf("env = %q\nwant %q", env, want)
	}
	if script != strings.Join(d.MainSteps[0].Inputs.RunCommand, "\n") {
		t.Errorf("script differs from the runCommand lines joined with newlines")
	}
}

func TestRenderErrors(t *testing.T) {
	d := mustLoad(t, "Quiesce")
	cases := []struct {
		name   string
		params map[string]string
		want   []string // substrings the error must contain
	}{
		{"missing action", map[string]string{}, []string{"action", "required"}},
		{"undeclared", map[string]string{"action": "freeze", "commands": "id"}, []string{`"commands"`, "not declared"}},
		{"bad action", map[string]string{"action": "rm"}, []string{"action", `"rm"`}},
		{"bad lock", map[string]string{"action": "freeze", "mysqlLock": "FTWRL"}, []string{"mysqlLock", `"FTWRL"`}},
		{"bad mounts", map[string]string{"action": "freeze", "mounts": "/var/lib/mysql;reboot"}, []string{"mounts", `"/var/lib/mysql;reboot"`}},
		{"mounts too long", map[string]string{"action": "freeze", "mounts": "/" + strings.Repeat("a", 1024)}, []string{"mounts", "longer than 1024"}},
		{"bad bool", map[string]string{"action": "freeze", "killLongQueries": "yes"}, []string{"killLongQueries", `"yes"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := d.Render(c.params)
			if err == nil {
				t.Fatal("Render accepted it")
			}
			if !errors.Is(err, ssmdoc.ErrInvalidParameter) {
				t.Errorf("error %v does not wrap ErrInvalidParameter", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// Render substitutes {{ name }} textually, as the agent does, so a document
// that used a reference would be tested as it really runs.
func TestRenderTextInterpolationMimicsAgent(t *testing.T) {
	doc := shellDoc(`  msg:
    type: String
    default: hi
    allowedPattern: '^[a-z]+$'
  env:
    type: String
    default: there
    allowedPattern: '^[a-z]+$'
    interpolationType: ENV_VAR
`, `echo {{msg}} {{ env }}`, `echo "$SSM_env"`)
	d, err := ssmdoc.Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	script, env, err := d.Render(map[string]string{"msg": "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if script != "echo hello there\necho \"$SSM_env\"" {
		t.Errorf("script = %q", script)
	}
	if strings.Join(env, ",") != "SSM_env=there" {
		t.Errorf("env = %q (only ENV_VAR parameters are exported)", env)
	}
}

func ptr(s string) *string { return &s }

func deref(p *string) string {
	if p == nil {
		return "<none>"
	}
	return *p
}
