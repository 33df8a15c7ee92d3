package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/state"
)

// Bad values that used to be trimmed, mis-classified or echoed whole: each is
// refused with exit 2 and one short stderr line naming it, and nothing is
// frozen or left behind.
func TestInputRefusalsExit2NothingFrozen(t *testing.T) {
	fs := loopFS(t, "xfs")
	e := newEnv(t)
	M := fs.Mount
	plainFile := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(plainFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	commaDir := filepath.Join(t.TempDir(), "a,b")
	if err := os.Mkdir(commaDir, 0o755); err != nil {
		t.Fatal(err)
	}
	symlinked := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(t.TempDir(), symlinked); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(t.TempDir(), "foreign")
	if err := os.Mkdir(foreign, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(foreign, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	longID := strings.Repeat("r", 100_000)
	cases := []struct {
		name string
		args []string
		want []string // on the one stderr line
	}{
		{"leading space in mount", []string{"freeze", "--mount", " " + M}, []string{`" ` + M + `"`, "whitespace"}},
		{"trailing space in mount", []string{"freeze", "--mount", M + " "}, []string{`"` + M + ` "`, "whitespace"}},
		{"trailing tab in mount", []string{"freeze", "--mount", M + "\t"}, []string{`"` + M + `\t"`, "whitespace"}},
		{"space after comma", []string{"freeze", "--mount", M + ", " + M}, []string{`" ` + M + `"`, "whitespace"}},
		{"check with space in mount", []string{"check", "--mount", M + " "}, []string{`"` + M + ` "`, "whitespace"}},
		{"mount path with comma", []string{"freeze", "--mount", commaDir}, []string{commaDir, "','"}},
		{"relative state dir, status", []string{"status", "--state-dir", "rel/dir"}, []string{`"rel/dir"`}},
		{"relative state dir, freeze", []string{"freeze", "--mount", M, "--state-dir", "rel/dir"}, []string{`"rel/dir"`}},
		{"relative state dir, check", []string{"check", "--mount", M, "--state-dir", "rel/dir"}, []string{`"rel/dir"`}},
		{"state dir is a file", []string{"status", "--state-dir", plainFile}, []string{plainFile, "not a directory"}},
		{"state dir below a file", []string{"thaw", "--run-id", "x", "--state-dir", plainFile + "/s"}, []string{plainFile + "/s"}},
		{"symlinked state dir", []string{"status", "--state-dir", symlinked}, []string{symlinked, "symbolic link"}},
		{"state dir owned by another user", []string{"status", "--state-dir", foreign}, []string{foreign, "owned by uid 65534"}},
		{"unclean state dir", []string{"status", "--state-dir", e.stateDir + "/../s"}, []string{"/../s"}},
		{"timeout shorter than lock wait", []string{"freeze", "--mount", M, "--mysql-lock", "ftwrl",
			"--mysql-socket", "/nonexistent/mysqld.sock", "--timeout", "2s", "--lock-wait", "5s"}, []string{"--timeout 2s", "--lock-wait 5s"}},
		{"timeout equal to lock wait", []string{"freeze", "--mount", M, "--mysql-lock", "backup-stage",
			"--timeout", "5s", "--lock-wait", "5s"}, []string{"--timeout 5s", "--lock-wait 5s"}},
		{"huge run id, freeze", []string{"freeze", "--mount", M, "--run-id", longID}, []string{"--run-id", "(100000 bytes)"}},
		{"huge run id, status", []string{"status", "--run-id", longID}, []string{"--run-id", "(100000 bytes)"}},
		{"huge mount", []string{"freeze", "--mount", "/" + longID}, []string{"--mount", "(100001 bytes)"}},
		{"huge timeout value", []string{"freeze", "--mount", M, "--timeout", longID}, []string{"-timeout", "(100000 bytes)"}},
		{"huge unknown flag", []string{"freeze", "--mount", M, "--" + longID}, []string{"not defined", "message cut"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(tc.args...)
			line := requireUsageLine(t, r)
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("stderr %.500q does not name %q", line, w)
				}
			}
			// An echoed value is cut: a 100 000-byte argument never comes back whole.
			if len(r.stderr) > 1100 || len(r.stdout) > 1200 {
				t.Errorf("output too long: stdout %d bytes, stderr %d bytes", len(r.stdout), len(r.stderr))
			}
			if tc.args[0] == "check" && !strings.Contains(tc.name, "state dir") { // a bad state dir is refused before any check
				var cr contract.CheckReport
				decodeOne(t, r.stdout, &cr)
				if cr.OK {
					t.Fatalf("check report OK: %+v", cr)
				}
			} else {
				var er contract.ErrorReport
				decodeOne(t, r.stdout, &er)
				if er.ExitCode != contract.ExitUsage {
					t.Fatalf("error report %+v", er)
				}
			}
			requireCompletes(t, writer(t, M), 2*time.Second)
		})
	}
	e.requireOnlyProcs(t)
	if runs, _ := (&state.Dir{Path: e.stateDir}).List(); len(runs) != 0 {
		t.Fatalf("bad input left runs in the state dir: %+v", runs)
	}
}
