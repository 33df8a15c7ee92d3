package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/preflight"
	"github.com/quiesce/quiesce/hostagent/internal/restore"
	"github.com/quiesce/quiesce/hostagent/internal/volumes"
	"github.com/quiesce/quiesce/internal/agenterr"
)

func TestExitCode(t *testing.T) {
	cases := []struct {
		err  error
		want contract.ExitCode
	}{
		{nil, contract.ExitOK},
		{errors.New("boom"), contract.ExitFailed},
		{agenterr.Usagef("--mount %q: nope", "x"), contract.ExitUsage},
		{fmt.Errorf("freeze /a: %w", contract.ErrBusy), contract.ExitBusy},
		{fmt.Errorf("thaw: %w", contract.ErrLate), contract.ExitLate},
		{fmt.Errorf("lock: %w", fmt.Errorf("wait: %w", contract.ErrLockWait)), contract.ExitLockWait},
		{errors.Join(errors.New("x"), contract.ErrLockWait), contract.ExitLockWait},
		// verify and clone: a failed set, and the restore machinery's errors (classify).
		{fmt.Errorf("%w: 1 problem", contract.ErrVerifyFailed), contract.ExitVerifyFailed},
		{classify(fmt.Errorf("x: %w", restore.ErrBusy)), contract.ExitBusy},
		{classify(fmt.Errorf("x: %w", restore.ErrInUse)), contract.ExitBusy},
		{classify(fmt.Errorf("x: %w", restore.ErrNotAttached)), contract.ExitUsage},
		{classify(fmt.Errorf("x: %w", restore.ErrUnsupported)), contract.ExitUsage},
		{classify(fmt.Errorf("x: %w", restore.ErrAmbiguous)), contract.ExitUsage},
		{classify(fmt.Errorf("x: %w", restore.ErrServerExited)), contract.ExitFailed},
		{classify(context.DeadlineExceeded), contract.ExitFailed},
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
		code contract.ExitCode
		err  string
	}{
		{nil, contract.ExitUsage, "no command"},
		{[]string{"frobnicate"}, contract.ExitUsage, `"frobnicate"`},
		{[]string{"thaw"}, contract.ExitUsage, "--run-id"},
		{[]string{"thaw", "--run-id", "a b"}, contract.ExitUsage, `"a b"`},
		{[]string{"status", "--run-id", "-"}, contract.ExitUsage, `"-"`},
		{[]string{"freeze", "--timeout", "1h", "--mount", "/x"}, contract.ExitUsage, "--timeout 1h0m0s"},
		{[]string{"freeze", "--mount", "/x", "--mysql-lock", "fast"}, contract.ExitUsage, `"fast"`},
		{[]string{"freeze", "-h"}, contract.ExitOK, ""},
		{[]string{"help"}, contract.ExitOK, ""},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		code := contract.ExitCode(Run(context.Background(), tc.args, &stdout, &stderr))
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, code, tc.code, stderr.String())
			continue
		}
		if tc.err == "" {
			continue
		}
		var er contract.ErrorReport
		if err := json.Unmarshal(stdout.Bytes(), &er); err != nil || er.ExitCode != tc.code {
			t.Errorf("%v: stdout %q is not an ErrorReport with exit %d", tc.args, stdout.String(), tc.code)
		}
		if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], tc.err) {
			t.Errorf("%v: stderr %q, want one line naming %s", tc.args, stderr.String(), tc.err)
		}
	}
}

func TestVolumesOfRefusesUnsnapshottableMountsOnEC2(t *testing.T) {
	sys := t.TempDir()
	disk := func(name, majMin, serial string) {
		dir := filepath.Join(sys, "class", "block", name)
		os.MkdirAll(filepath.Join(dir, "device"), 0o755)
		os.WriteFile(filepath.Join(dir, "device", "serial"), []byte(serial+"\n"), 0o644)
		os.MkdirAll(filepath.Join(sys, "dev", "block"), 0o755)
		os.Symlink(dir, filepath.Join(sys, "dev", "block", majMin))
	}
	disk("nvme1n1", "259:1", "vol0123abc")
	disk("nvme2n1", "259:2", "AWS1B2C3D4E5F") // instance store
	d := volumes.Discoverer{SysRoot: sys}
	ebs := preflight.Mount{Path: "/data", Source: "/dev/nvme1n1", MajMin: unix.Mkdev(259, 1)}
	local := preflight.Mount{Path: "/scratch", Source: "/dev/nvme2n1", MajMin: unix.Mkdev(259, 2)}
	gone := preflight.Mount{Path: "/gone", Source: "/dev/nvme9n1", MajMin: unix.Mkdev(259, 9)}

	if res, err := volumesOf(context.Background(), d, true, ebs); err != nil || len(res.VolumeIDs) != 1 || res.VolumeIDs[0] != "vol-0123abc" {
		t.Fatalf("ebs: %+v %v", res, err)
	}
	if _, err := volumesOf(context.Background(), d, true, local); !errors.Is(err, contract.ErrUsage) || !strings.Contains(err.Error(), "/scratch") {
		t.Fatalf("instance store on EC2: %v, want a usage error naming the mount", err)
	}
	if _, err := volumesOf(context.Background(), d, true, gone); err == nil {
		t.Fatal("discovery failure on EC2 accepted")
	}
	// Off EC2 (tests, the local demo) nothing is refused.
	for _, m := range []preflight.Mount{local, gone} {
		if _, err := volumesOf(context.Background(), d, false, m); err != nil {
			t.Fatalf("off EC2 %s: %v", m.Path, err)
		}
	}
}
