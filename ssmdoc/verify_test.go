package ssmdoc_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quiesce/quiesce/ssmdoc"
)

func mustVerify(t *testing.T) *ssmdoc.Document {
	t.Helper()
	d, err := ssmdoc.Verify()
	if err != nil {
		t.Fatalf("load verify document: %v", err)
	}
	return d
}

const (
	vol1 = "vol-0123456789abcdef0"
	vol2 = "vol-0fedcba9876543210"
)

// The parameters the verify action sends: names, defaults, ENV_VAR only,
// anchored patterns; the step's timeout is SSM's 48 h maximum, the longest
// VerifyMaxHours (hostagent's --timeout is the bound that bites).
func TestVerifyParameterContract(t *testing.T) {
	d := mustVerify(t)
	defaults := map[string]*string{"volumes": nil, "expectBinlogFile": ptr(""), "expectBinlogPos": ptr(""), "expectGtid": ptr(""),
		"checkSql": ptr(""), "mysqld": ptr(""), "mysqldOptionsFile": ptr(""), "timeout": ptr("2h"), "runId": ptr("")}
	if got := d.ParameterNames(); len(got) != len(defaults) {
		t.Fatalf("parameters = %v, want %d", got, len(defaults))
	}
	for name, def := range defaults {
		p := d.Parameters[name]
		if p == nil {
			t.Errorf("parameter %s missing", name)
			continue
		}
		if (def == nil) != (p.Default == nil) || (def != nil && *def != *p.Default) {
			t.Errorf("%s: default %v, want %v", name, deref(p.Default), deref(def))
		}
		if p.InterpolationType != ssmdoc.InterpolationEnvVar || p.AllowedPattern == "" ||
			!strings.HasPrefix(p.AllowedPattern, "^") || !strings.HasSuffix(p.AllowedPattern, "$") {
			t.Errorf("%s: needs ENV_VAR and an anchored allowedPattern: %+v", name, p)
		}
	}
	if got := d.MainSteps[0].Inputs.TimeoutSeconds; got != "172800" {
		t.Errorf("timeoutSeconds = %v, want 172800 (48 h)", got)
	}
	// Eleven volumes (/dev/sdf-/dev/sdp) of the longest ID fit; twelve do not.
	long := strings.Repeat(vol1+",", 10) + vol1
	if err := d.Validate("volumes", long); err != nil {
		t.Errorf("eleven volumes refused: %v", err)
	}
	if err := d.Validate("volumes", long+","+vol2); err == nil {
		t.Error("twelve volumes accepted")
	}
}

func TestVerifyScriptPassesArgumentsThrough(t *testing.T) {
	d := mustVerify(t)
	for _, c := range []struct {
		name   string
		params map[string]string
		exit   string
		argv   []string
	}{
		{"minimal", map[string]string{"volumes": vol1}, "0", []string{"verify", "--volume", vol1, "--timeout", "2h"}},
		{"everything", map[string]string{"volumes": vol1 + "," + vol2, "expectBinlogFile": "mysql-bin.000042", "expectBinlogPos": "4711",
			"expectGtid": "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5,0-1-100", "checkSql": "/etc/quiesce/verify.sql", "mysqld": "/usr/sbin/mariadbd",
			"mysqldOptionsFile": "/etc/quiesce/verify.cnf", "timeout": "350m", "runId": "20261201T120000Z-ab12"}, "6",
			[]string{"verify", "--volume", vol1, "--volume", vol2, "--expect-binlog-file", "mysql-bin.000042", "--expect-binlog-pos", "4711",
				"--expect-gtid", "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5,0-1-100", "--check-sql", "/etc/quiesce/verify.sql",
				"--mysqld", "/usr/sbin/mariadbd", "--mysqld-options-file", "/etc/quiesce/verify.cnf", "--timeout", "350m", "--run-id", "20261201T120000Z-ab12"}},
		{"busy passes through", map[string]string{"volumes": vol2, "expectGtid": "0-1-1234"}, "3", []string{"verify", "--volume", vol2, "--expect-gtid", "0-1-1234", "--timeout", "2h"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runDocument(t, d, c.params, c.exit, true)
			if r.argv == nil || strings.Join(r.argv, "\x00") != strings.Join(c.argv, "\x00") {
				t.Errorf("hostagent argv = %q\nwant            %q", r.argv, c.argv)
			}
			if r.stdout != fakeStdout(c.argv) || itoa(r.code) != c.exit {
				t.Errorf("stdout %q, exit %d: want hostagent's own", r.stdout, r.code)
			}
		})
	}
}

// The binlog position is one check: half of it is refused before hostagent runs.
func TestVerifyScriptBinlogPair(t *testing.T) {
	d := mustVerify(t)
	for _, p := range []map[string]string{{"volumes": vol1, "expectBinlogFile": "mysql-bin.000001"}, {"volumes": vol1, "expectBinlogPos": "4"}} {
		r := runDocument(t, d, p, "0", true)
		if r.argv != nil || r.code != 2 || r.stdout != `{"error":"expectBinlogFile and expectBinlogPos go together","exit_code":2}`+"\n" {
			t.Errorf("%v: argv %q exit %d stdout %q", p, r.argv, r.code, r.stdout)
		}
	}
}

func TestVerifyRenderRefusesHostileValues(t *testing.T) {
	d := mustVerify(t)
	for _, name := range d.ParameterNames() {
		for _, v := range injections {
			params := map[string]string{"volumes": vol1, name: v}
			if _, _, err := d.Render(params); err == nil {
				t.Errorf("Render accepted %s=%q", name, v)
			} else if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name parameter %s", err, name)
			}
		}
	}
	for _, v := range []string{"vol-123", "vol-0123456789ABCDEF0", vol1 + ",", "," + vol1, vol1 + " " + vol2, "snap-0123456789abcdef0"} {
		if err := d.Validate("volumes", v); err == nil {
			t.Errorf("volumes %q accepted", v)
		}
	}
}

// A hostile value that somehow reached the script arrives at hostagent as
// one literal argument; the shell never runs it.
func TestVerifyScriptTreatsValuesAsData(t *testing.T) {
	bash := requireBash(t)
	script, env, err := mustVerify(t).Render(map[string]string{"volumes": vol1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hostagent"), []byte(fakeHostagent), 0o755); err != nil {
		t.Fatal(err)
	}
	canary := filepath.Join(dir, "pwned")
	hostile := map[string]string{
		"SSM_volumes":    vol1 + ",$(touch " + canary + "),`touch " + canary + "`,*",
		"SSM_expectGtid": "0-1-1; touch " + canary,
		"SSM_checkSql":   "/x$(touch " + canary + ")",
	}
	for i, kv := range env {
		if v, ok := hostile[strings.SplitN(kv, "=", 2)[0]]; ok {
			env[i] = strings.SplitN(kv, "=", 2)[0] + "=" + v
		}
	}
	argvFile := filepath.Join(dir, "argv")
	cmd := exec.Command(bash, "-c", script)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + dir + ":/usr/bin:/bin", "FAKE_ARGV_FILE=" + argvFile}, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("script: %v\n%s", err, out)
	}
	if _, err := os.Stat(canary); err == nil {
		t.Fatal("a parameter value was executed by the shell")
	}
	b, err := os.ReadFile(argvFile)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"verify", "--volume", vol1, "--volume", "$(touch " + canary + ")", "--volume", "`touch " + canary + "`", "--volume", "*",
		"--expect-gtid", "0-1-1; touch " + canary, "--check-sql", "/x$(touch " + canary + ")", "--timeout", "2h"}
	if got := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"); strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("argv = %q\nwant   %q", got, want)
	}
}
