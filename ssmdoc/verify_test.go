package ssmdoc_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/quiesce/quiesce/ssmdoc"
)

const (
	vol1 = "vol-0123456789abcdef0"
	vol2 = "vol-0fedcba9876543210"
)

// The parameters the verify action sends: names, defaults, ENV_VAR only,
// anchored patterns; the step's timeout is SSM's 48 h maximum, the longest
// VerifyMaxHours (hostagent's --timeout is the bound that bites).
func TestVerifyParameterContract(t *testing.T) {
	d := mustLoad(t, "verify")
	defaults := map[string]*string{"volumes": nil, "expectBinlogFile": ptr(""), "expectBinlogPos": ptr(""), "expectGtid": ptr(""),
		"checkSql": ptr(""), "mysqld": ptr(""), "mysqldOptionsFile": ptr(""), "timeout": ptr("2h"), "runId": ptr(""),
		"datadirRelative": ptr(""), "binlogBasename": ptr(""), "innodbPageSize": ptr(""), "lowerCaseTableNames": ptr(""),
		"innodbDataFilePath": ptr(""), "innodbLogGroupHomeDir": ptr("")}
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
	d := mustLoad(t, "verify")
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
		{"the source's settings", map[string]string{"volumes": vol1, "datadirRelative": ".", "binlogBasename": "binlog/mysql-bin", "innodbPageSize": "4096",
			"lowerCaseTableNames": "1", "innodbDataFilePath": "ibdata1:12M;ibdata2:1G:autoextend", "innodbLogGroupHomeDir": "mysql/redo"}, "0",
			[]string{"verify", "--volume", vol1, "--datadir-relative", ".", "--binlog-basename", "binlog/mysql-bin", "--innodb-page-size", "4096",
				"--lower-case-table-names", "1", "--innodb-data-file-path", "ibdata1:12M;ibdata2:1G:autoextend",
				"--innodb-log-group-home-dir", "mysql/redo", "--timeout", "2h"}},
		{"busy passes through", map[string]string{"volumes": vol2, "expectGtid": "0-1-1234"}, "3", []string{"verify", "--volume", vol2, "--expect-gtid", "0-1-1234", "--timeout", "2h"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runDocument(t, d, c.params, c.exit, true)
			if r.argv == nil || strings.Join(r.argv, "\x00") != strings.Join(c.argv, "\x00") {
				t.Errorf("hostagent argv = %q\nwant            %q", r.argv, c.argv)
			}
			if r.stdout != fakeStdout(c.argv) || strconv.Itoa(r.code) != c.exit {
				t.Errorf("stdout %q, exit %d: want hostagent's own", r.stdout, r.code)
			}
		})
	}
}

// The restore settings' patterns take what quiesce:restore carries and
// refuse what would leave the volume or hostagent would refuse anyway.
func TestVerifyRestoreSettingPatterns(t *testing.T) {
	d := mustLoad(t, "verify")
	for name, ok := range map[string][]string{
		"datadirRelative":       {".", "mysql", "data/mysql-8.0", "_db"},
		"binlogBasename":        {"mysql-bin", "binlog/mysql-bin", "log.bin"},
		"innodbPageSize":        {"4096", "8192", "16384", "32768", "65536"},
		"lowerCaseTableNames":   {"0", "1", "2"},
		"innodbDataFilePath":    {"ibdata1:12M:autoextend", "ibdata1:12M;ibdata2:1G:autoextend:max:2G", "ibdata1:10Gnewraw;ibdata2:76M", "ibdata1:76M"},
		"innodbLogGroupHomeDir": {".", "redo", "mysql/redo"},
	} {
		for _, v := range ok {
			if err := d.Validate(name, v); err != nil {
				t.Errorf("%s %q refused: %v", name, v, err)
			}
		}
	}
	for name, bad := range map[string][]string{
		"datadirRelative":       {"/var/lib/mysql", "..", "../etc", "a/../..", "./a", ".hidden", "a/.", "-rf", "a b"},
		"binlogBasename":        {".", "/var/lib/mysql-bin", "../x", "a/..", "-x"},
		"innodbPageSize":        {"1024", "16k", "016384", "16384 "},
		"lowerCaseTableNames":   {"3", "-1", "01", "true"},
		"innodbDataFilePath":    {"/abs/ibdata1:12M", "ibdata1:12M autoextend", ";ibdata1:12M", "-x:12M", "ibdata1", "5s;reboot", "ibdata1:12M;", "ibdata1:12M:max"},
		"innodbLogGroupHomeDir": {"/redo", "..", "a/../b"},
	} {
		for _, v := range bad {
			if err := d.Validate(name, v); err == nil {
				t.Errorf("%s %q accepted", name, v)
			}
		}
	}
}

// The binlog position is one check: half of it is refused before hostagent runs.
func TestVerifyScriptBinlogPair(t *testing.T) {
	d := mustLoad(t, "verify")
	for _, p := range []map[string]string{{"volumes": vol1, "expectBinlogFile": "mysql-bin.000001"}, {"volumes": vol1, "expectBinlogPos": "4"}} {
		r := runDocument(t, d, p, "0", true)
		if r.argv != nil || r.code != 2 || r.stdout != `{"error":"expectBinlogFile and expectBinlogPos go together","exit_code":2}`+"\n" {
			t.Errorf("%v: argv %q exit %d stdout %q", p, r.argv, r.code, r.stdout)
		}
	}
}

func TestVerifyRenderRefusesHostileValues(t *testing.T) {
	d := mustLoad(t, "verify")
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
	script, env, err := mustLoad(t, "verify").Render(map[string]string{"volumes": vol1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	canary := canaryIn(dir)
	got := runHostile(t, bash, dir, script, env, map[string]string{
		"SSM_volumes":    vol1 + ",$(touch " + canary + "),`touch " + canary + "`,*",
		"SSM_expectGtid": "0-1-1; touch " + canary,
		"SSM_checkSql":   "/x$(touch " + canary + ")",
	})
	want := []string{"verify", "--volume", vol1, "--volume", "$(touch " + canary + ")", "--volume", "`touch " + canary + "`", "--volume", "*",
		"--expect-gtid", "0-1-1; touch " + canary, "--check-sql", "/x$(touch " + canary + ")", "--timeout", "2h"}
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("argv = %q\nwant   %q", got, want)
	}
}
