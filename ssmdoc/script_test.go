package ssmdoc_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/ssmdoc"
)

// fakeHostagent prints its argv, one argument per line, after a JSON header
// line, writes a marker on stderr, and exits with $FAKE_EXIT. It also records
// its argv NUL-separated in $FAKE_ARGV_FILE so the test can compare arguments
// byte for byte (including any that contain newlines, which must never happen).
const fakeHostagent = `#!/bin/bash
printf '{"fake_hostagent":true,"argc":%d}\n' "$#"
for a in "$@"; do printf '%s\n' "$a"; done
printf 'fake stderr line\n' >&2
if [ -n "${FAKE_ARGV_FILE:-}" ]; then printf '%s\0' "$@" > "$FAKE_ARGV_FILE"; fi
exit "${FAKE_EXIT:-0}"
`

func requireBash(t *testing.T) string {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	return bash
}

type run struct {
	stdout, stderr string
	code           int
	argv           []string // nil if the fake never ran
}

// runDocument renders params and runs the script the way the SSM agent does:
// written to a file and executed by `sh -c <file>` (the #!/bin/bash line
// selects bash), with the agent's environment plus the SSM_* variables. A
// fake hostagent is first on PATH.
func runDocument(t *testing.T, d *ssmdoc.Document, params map[string]string, fakeExit string, withFake bool) run {
	t.Helper()
	requireBash(t)
	script, env, err := d.Render(params)
	if err != nil {
		t.Fatalf("Render(%v): %v", params, err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if withFake {
		if err := os.WriteFile(filepath.Join(bin, "hostagent"), []byte(fakeHostagent), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	scriptPath := filepath.Join(dir, "_script.sh")
	if err := os.WriteFile(scriptPath, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	argvFile := filepath.Join(dir, "argv")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", scriptPath)
	// A minimal environment like the agent's; PATH deliberately lacks
	// /usr/local/bin so the script's own PATH extension is exercised, and
	// the fake comes first.
	cmd.Env = append([]string{
		"PATH=" + bin + ":/usr/bin:/bin",
		"HOME=" + dir,
		"FAKE_EXIT=" + fakeExit,
		"FAKE_ARGV_FILE=" + argvFile,
	}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r := run{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	default:
		t.Fatalf("run script: %v", err)
	}
	if b, err := os.ReadFile(argvFile); err == nil {
		r.argv = strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if len(b) == 0 {
			r.argv = []string{}
		}
	}
	return r
}

func fakeStdout(argv []string) string {
	var b strings.Builder
	b.WriteString(`{"fake_hostagent":true,"argc":`)
	b.WriteString(strconv.Itoa(len(argv)))
	b.WriteString("}\n")
	for _, a := range argv {
		b.WriteString(a + "\n")
	}
	return b.String()
}

func TestScriptPassesArgumentsThrough(t *testing.T) {
	d := mustLoad(t, "Quiesce")
	cases := []struct {
		name   string
		params map[string]string
		exit   string
		argv   []string
	}{
		{
			name: "freeze two mounts, defaults",
			params: map[string]string{
				"action": "freeze", "mounts": "/var/lib/mysql,/var/lib/mysql-binlog", "runId": "r-20261125-1",
			},
			exit: "0",
			argv: []string{"freeze", "--mount", "/var/lib/mysql", "--mount", "/var/lib/mysql-binlog",
				"--mysql-lock", "auto", "--lock-wait", "5s", "--long-query-limit", "10s",
				"--timeout", "30s", "--run-id", "r-20261125-1"},
		},
		{
			name: "freeze all options, kill long queries",
			params: map[string]string{
				"action": "freeze", "mounts": "/data", "mysqlLock": "backup-stage",
				"mysqlDefaultsFile": "/etc/quiesce/my.cnf", "lockWait": "500ms", "longQueryLimit": "1m30s",
				"timeout": "2m", "killLongQueries": "true", "runId": "abc",
			},
			exit: "0",
			argv: []string{"freeze", "--mount", "/data", "--mysql-lock", "backup-stage",
				"--mysql-defaults-file", "/etc/quiesce/my.cnf", "--lock-wait", "500ms",
				"--long-query-limit", "1m30s", "--kill-long-queries", "--timeout", "2m", "--run-id", "abc"},
		},
		{
			name:   "freeze without run id, killLongQueries false",
			params: map[string]string{"action": "freeze", "mounts": "/data", "killLongQueries": "false", "mysqlLock": "none"},
			exit:   "5",
			argv: []string{"freeze", "--mount", "/data", "--mysql-lock", "none", "--lock-wait", "5s",
				"--long-query-limit", "10s", "--timeout", "30s"},
		},
		{
			name:   "freeze a read-only replica by stopping its applier",
			params: map[string]string{"action": "freeze", "mounts": "/data", "mysqlLock": "replica", "runId": "r1"},
			exit:   "0",
			argv: []string{"freeze", "--mount", "/data", "--mysql-lock", "replica", "--lock-wait", "5s",
				"--long-query-limit", "10s", "--timeout", "30s", "--run-id", "r1"},
		},
		{
			name:   "freeze with no mounts leaves the complaint to hostagent",
			params: map[string]string{"action": "freeze"},
			exit:   "2",
			argv: []string{"freeze", "--mysql-lock", "auto", "--lock-wait", "5s",
				"--long-query-limit", "10s", "--timeout", "30s"},
		},
		{
			name:   "thaw",
			params: map[string]string{"action": "thaw", "runId": "r-20261125-1", "mounts": "/ignored"},
			exit:   "4",
			argv:   []string{"thaw", "--run-id", "r-20261125-1"},
		},
		{
			name:   "check",
			params: map[string]string{"action": "check", "mounts": "/a,/b/c", "mysqlDefaultsFile": "/etc/q.cnf", "killLongQueries": "true"},
			exit:   "1",
			argv: []string{"check", "--mount", "/a", "--mount", "/b/c", "--mysql-lock", "auto",
				"--mysql-defaults-file", "/etc/q.cnf", "--lock-wait", "5s", "--long-query-limit", "10s", "--kill-long-queries"},
		},
		{
			name:   "status all",
			params: map[string]string{"action": "status"},
			exit:   "0",
			argv:   []string{"status"},
		},
		{
			name:   "status one run",
			params: map[string]string{"action": "status", "runId": "r9"},
			exit:   "3",
			argv:   []string{"status", "--run-id", "r9"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runDocument(t, d, c.params, c.exit, true)
			if strings.Join(r.argv, "\x00") != strings.Join(c.argv, "\x00") || r.argv == nil {
				t.Errorf("hostagent argv = %q\nwant            %q", r.argv, c.argv)
			}
			if want := fakeStdout(c.argv); r.stdout != want {
				t.Errorf("stdout = %q\nwant     %q", r.stdout, want)
			}
			if strconv.Itoa(r.code) != c.exit {
				t.Errorf("exit code = %d, want %s (hostagent's)", r.code, c.exit)
			}
			if r.stderr != "fake stderr line\n" {
				t.Errorf("stderr = %q", r.stderr)
			}
		})
	}
}

func TestScriptThawWithoutRunID(t *testing.T) {
	r := runDocument(t, mustLoad(t, "Quiesce"), map[string]string{"action": "thaw"}, "0", true)
	if r.argv != nil {
		t.Fatalf("hostagent ran with %q", r.argv)
	}
	if r.code != 2 {
		t.Errorf("exit = %d, want 2", r.code)
	}
	if r.stdout != `{"error":"runId is required for thaw","exit_code":2}`+"\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "runId is required for thaw") {
		t.Errorf("stderr = %q", r.stderr)
	}
}

func TestScriptWithoutHostagent(t *testing.T) {
	requireBash(t)
	if _, err := os.Stat("/usr/local/bin/hostagent"); err == nil {
		t.Skip("a real hostagent is installed in /usr/local/bin")
	}
	if _, err := os.Stat("/usr/local/sbin/hostagent"); err == nil {
		t.Skip("a real hostagent is installed in /usr/local/sbin")
	}
	r := runDocument(t, mustLoad(t, "Quiesce"), map[string]string{"action": "status"}, "0", false)
	if r.code != 1 || !strings.HasPrefix(r.stdout, `{"error":"hostagent not found on PATH`) {
		t.Errorf("exit %d stdout %q", r.code, r.stdout)
	}
}

// An agent older than 3.3.2746.0 ignores interpolationType and exports
// nothing; the script must refuse rather than run with empty values.
func TestScriptRefusesWithoutEnvironment(t *testing.T) {
	bash := requireBash(t)
	d := mustLoad(t, "Quiesce")
	script, _, err := d.Render(map[string]string{"action": "status"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hostagent"), []byte(fakeHostagent), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bash, "-c", script)
	cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin"}
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 2 {
		t.Fatalf("err = %v, want exit 2", err)
	}
	if !strings.Contains(string(out), "needs amazon-ssm-agent") || strings.Contains(string(out), "fake_hostagent") {
		t.Errorf("stdout = %q", out)
	}
}

// canaryIn is the file a hostile value creates if a shell runs it.
func canaryIn(dir string) string { return filepath.Join(dir, "pwned") }

// runHostile runs a rendered script in dir against the fake hostagent, with
// the SSM_ variables named in hostile set to its values (which create
// canaryIn(dir) if a shell ever runs them). It fails the test if one ran, and
// returns the argv the fake hostagent got (it writes it to dir/argv).
func runHostile(t *testing.T, bash, dir, script string, env []string, hostile map[string]string) []string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "hostagent"), []byte(fakeHostagent), 0o755); err != nil {
		t.Fatal(err)
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
	if _, err := os.Stat(canaryIn(dir)); err == nil {
		t.Fatal("a parameter value was executed by the shell")
	}
	b, err := os.ReadFile(argvFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// Render is the first line of defence; the script re-checks for control and
// non-ASCII characters in case a value ever reached it unvalidated (an agent
// or service that validated differently). Values are passed as data only: a
// hostile value that reaches hostagent arrives as one literal argument.
func TestScriptTreatsValuesAsData(t *testing.T) {
	bash := requireBash(t)
	d := mustLoad(t, "Quiesce")
	script, env, err := d.Render(map[string]string{"action": "freeze", "mounts": "/a"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	canary := canaryIn(dir)
	argv := runHostile(t, bash, dir, script, env, map[string]string{
		"SSM_mounts":            "/a,$(touch " + canary + "),`touch " + canary + "`,/b;touch " + canary + ",/c *",
		"SSM_mysqlDefaultsFile": "/x$(touch " + canary + ")",
		"SSM_runId":             "r1'; touch " + canary + "; '",
		"SSM_lockWait":          "5s && touch " + canary,
	})
	argvFile := filepath.Join(dir, "argv")
	want := []string{"freeze",
		"--mount", "/a", "--mount", "$(touch " + canary + ")", "--mount", "`touch " + canary + "`",
		"--mount", "/b;touch " + canary, "--mount", "/c *",
		"--mysql-lock", "auto", "--mysql-defaults-file", "/x$(touch " + canary + ")",
		"--lock-wait", "5s && touch " + canary, "--long-query-limit", "10s", "--timeout", "30s",
		"--run-id", "r1'; touch " + canary + "; '"}
	if strings.Join(argv, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("argv = %q\nwant   %q", argv, want)
	}

	for _, v := range []string{"/a\nreboot", "/a\x1b[2J", "/mуsql"} {
		envBad := append([]string(nil), env...)
		for i, e := range envBad {
			if strings.HasPrefix(e, "SSM_mounts=") {
				envBad[i] = "SSM_mounts=" + v
			}
		}
		os.Remove(argvFile)
		cmd := exec.Command(bash, "-c", script)
		cmd.Env = append([]string{"PATH=" + dir + ":/usr/bin:/bin", "FAKE_ARGV_FILE=" + argvFile}, envBad...)
		out, err := cmd.Output()
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 2 {
			t.Errorf("mounts %q: err = %v, want exit 2", v, err)
		}
		if !strings.Contains(string(out), "non-printable") {
			t.Errorf("mounts %q: stdout = %q", v, out)
		}
		if _, err := os.Stat(argvFile); err == nil {
			t.Errorf("mounts %q: hostagent ran", v)
		}
	}
}

// Hostile values never get as far as bash: Render refuses them.
func TestRenderRefusesHostileValuesBeforeBash(t *testing.T) {
	d := mustLoad(t, "Quiesce")
	for _, name := range []string{"mounts", "mysqlDefaultsFile", "lockWait", "longQueryLimit", "timeout", "runId", "action", "mysqlLock", "killLongQueries"} {
		for _, v := range injections {
			params := map[string]string{"action": "freeze", name: v}
			if _, _, err := d.Render(params); err == nil {
				t.Errorf("Render accepted %s=%q", name, v)
			} else if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name parameter %s", err, name)
			}
		}
	}
}

// The mounts parameter is a comma-separated list, so a mount point whose
// path contains ',' cannot be told apart from two entries. The script
// refuses such a list (its entries joined back with ',' name an existing
// path) with a fixed message instead of freezing other paths than meant.
func TestScriptRefusesMountPathWithComma(t *testing.T) {
	d := mustLoad(t, "Quiesce")
	base := t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "db,", "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(base, "x,", "y,", "z"), 0o755); err != nil {
		t.Fatal(err)
	}
	const msg = `{"error":"mounts: a listed mount point contains ',' (the list separator); such a path cannot be given through this document","exit_code":2}` + "\n"
	for _, action := range []string{"freeze", "check"} {
		for _, mounts := range []string{
			base + "/db,/data",              // the path "<base>/db,/data" alone
			"/srv/a," + base + "/db,/data",  // after a plain entry
			base + "/x,/y,/z",               // three entries make one path
			base + "/db,/data,/var/lib/x-y", // before a plain entry
		} {
			r := runDocument(t, d, map[string]string{"action": action, "mounts": mounts}, "0", true)
			if r.argv != nil {
				t.Errorf("%s %q: hostagent ran with %q", action, mounts, r.argv)
			}
			if r.code != 2 || r.stdout != msg {
				t.Errorf("%s %q: exit %d stdout %q, want 2 and %q", action, mounts, r.code, r.stdout, msg)
			}
			if !strings.Contains(r.stderr, "contains ','") {
				t.Errorf("%s %q: stderr %q", action, mounts, r.stderr)
			}
		}
	}
	// Entries that do not join into an existing path pass through unchanged.
	r := runDocument(t, d, map[string]string{"action": "check", "mounts": base + "/db,/srv/a," + base + "/x"}, "0", true)
	want := []string{"check", "--mount", base + "/db", "--mount", "/srv/a", "--mount", base + "/x",
		"--mysql-lock", "auto", "--lock-wait", "5s", "--long-query-limit", "10s"}
	if strings.Join(r.argv, "\x00") != strings.Join(want, "\x00") || r.code != 0 {
		t.Errorf("argv %q exit %d, want %q", r.argv, r.code, want)
	}
}
