package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/quiesce/quiesce/hostagent/internal/agenterr"
	"github.com/quiesce/quiesce/report"
)

func TestExitCode(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, report.ExitOK},
		{errors.New("boom"), report.ExitFailed},
		{agenterr.Usagef("--mount %q: nope", "x"), report.ExitUsage},
		{fmt.Errorf("freeze /a: %w", agenterr.ErrBusy), report.ExitBusy},
		{fmt.Errorf("thaw: %w", agenterr.ErrLate), report.ExitLate},
		{fmt.Errorf("lock: %w", fmt.Errorf("wait: %w", agenterr.ErrLockWait)), report.ExitLockWait},
		{errors.Join(errors.New("x"), agenterr.ErrLockWait), report.ExitLockWait},
	}
	for _, tc := range cases {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// In-process runs of the paths that touch nothing: usage errors print one
// ErrorReport on stdout and one line on stderr.
func TestRunUsage(t *testing.T) {
	cases := []struct {
		args []string
		code int
		err  string
	}{
		{nil, report.ExitUsage, "no command"},
		{[]string{"frobnicate"}, report.ExitUsage, `"frobnicate"`},
		{[]string{"thaw"}, report.ExitUsage, "--run-id"},
		{[]string{"thaw", "--run-id", "a b"}, report.ExitUsage, `"a b"`},
		{[]string{"status", "--run-id", "-"}, report.ExitUsage, `"-"`},
		{[]string{"freeze", "--timeout", "1h", "--mount", "/x"}, report.ExitUsage, "--timeout 1h0m0s"},
		{[]string{"freeze", "--mount", "/x", "--mysql-lock", "fast"}, report.ExitUsage, `"fast"`},
		{[]string{"freeze", "-h"}, report.ExitOK, ""},
		{[]string{"help"}, report.ExitOK, ""},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		code := Run(context.Background(), tc.args, &stdout, &stderr)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, code, tc.code, stderr.String())
			continue
		}
		if tc.err == "" {
			continue
		}
		var er report.ErrorReport
		if err := json.Unmarshal(stdout.Bytes(), &er); err != nil || er.ExitCode != tc.code {
			t.Errorf("%v: stdout %q is not an ErrorReport with exit %d", tc.args, stdout.String(), tc.code)
		}
		if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], tc.err) {
			t.Errorf("%v: stderr %q, want one line naming %s", tc.args, stderr.String(), tc.err)
		}
	}
}
