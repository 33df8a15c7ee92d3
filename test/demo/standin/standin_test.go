package standin

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/test/awslocal"
)

// fakeHostagent writes a hostagent that prints its argv and the SSM_* env it
// did NOT get (the document must pass values as arguments), then exits with
// the code in $FAKE_EXIT.
func fakeHostagent(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hostagent"), []byte("#!/bin/bash\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRunCommandRunsTheRealDocument(t *testing.T) {
	bin := fakeHostagent(t, `printf '{"argv":"%s"}\n' "$*"; echo "to stderr" >&2; exit ${FAKE_EXIT:-0}`)
	h, err := NewHooks(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		params     map[string][]string
		exit       string
		wantStatus string
		wantCode   int
		wantOut    string
	}{
		{"freeze maps every parameter", map[string][]string{
			"action": {"freeze"}, "mounts": {"/srv/a,/srv/b"}, "mysqlLock": {"backup-stage"},
			"mysqlDefaultsFile": {"/etc/q/my.cnf"}, "timeout": {"7s"}, "runId": {"r-1"}, "killLongQueries": {"true"},
		}, "0", "Success", 0,
			"freeze --mount /srv/a --mount /srv/b --mysql-lock backup-stage --mysql-defaults-file /etc/q/my.cnf --lock-wait 5s --long-query-limit 10s --kill-long-queries --timeout 7s --run-id r-1"},
		{"thaw", map[string][]string{"action": {"thaw"}, "runId": {"r-1"}}, "0", "Success", 0, "thaw --run-id r-1"},
		{"exit code passes through", map[string][]string{"action": {"thaw"}, "runId": {"r-1"}}, "4", "Failed", 4, "thaw --run-id r-1"},
		{"busy", map[string][]string{"action": {"status"}}, "3", "Failed", 3, "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.Env = []string{"FAKE_EXIT=" + tt.exit}
			res := h.RunCommand(context.Background(), awslocal.Invocation{CommandID: "c1", InstanceID: "i-1", DocumentName: "Quiesce", Parameters: tt.params})
			if res.Status != tt.wantStatus || res.ResponseCode != tt.wantCode {
				t.Fatalf("status %s code %d, want %s %d; stderr %q", res.Status, res.ResponseCode, tt.wantStatus, tt.wantCode, res.Stderr)
			}
			if want := `{"argv":"` + tt.wantOut + `"}` + "\n"; res.Stdout != want {
				t.Fatalf("stdout %q, want %q", res.Stdout, want)
			}
			if !strings.Contains(res.Stderr, "to stderr") {
				t.Fatalf("stderr not captured: %q", res.Stderr)
			}
		})
	}
}

func TestRunCommandRejectsBadInput(t *testing.T) {
	bin := fakeHostagent(t, `echo ran; exit 0`)
	h, err := NewHooks(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		doc    string
		params map[string][]string
		want   string
	}{
		{"other document", "AWS-RunShellScript", map[string][]string{"action": {"status"}}, `document "AWS-RunShellScript" is not served`},
		{"disallowed action", "Quiesce", map[string][]string{"action": {"rm"}}, "rm"},
		{"injection in mounts", "Quiesce", map[string][]string{"action": {"freeze"}, "mounts": {"/x;reboot"}}, "mounts"},
		{"undeclared parameter", "Quiesce", map[string][]string{"action": {"status"}, "commands": {"id"}}, "commands"},
		{"two values", "Quiesce", map[string][]string{"action": {"status", "thaw"}}, "has 2 values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := h.RunCommand(context.Background(), awslocal.Invocation{DocumentName: tt.doc, Parameters: tt.params})
			if res.Status != "Failed" || res.ResponseCode == 0 || strings.Contains(res.Stdout, "ran") {
				t.Fatalf("bad input ran or succeeded: %+v", res)
			}
			if !strings.Contains(res.Stderr, tt.want) {
				t.Fatalf("stderr %q does not name %q", res.Stderr, tt.want)
			}
		})
	}
}

func TestRunCommandReportsChildHoldingStdout(t *testing.T) {
	// A hostagent that leaves a child with our stdout would hang the SSM Agent.
	bin := fakeHostagent(t, `sleep 3 & echo '{}'; exit 0`)
	h, err := NewHooks(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h.StdoutGrace = 200 * time.Millisecond
	start := time.Now()
	res := h.RunCommand(context.Background(), awslocal.Invocation{DocumentName: "Quiesce", Parameters: map[string][]string{"action": {"status"}}})
	if res.Status != "Failed" || !strings.Contains(res.Stderr, "output pipes stayed open") {
		t.Fatalf("want a failure naming the open pipes, got %+v", res)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s, the grace is 200ms", d)
	}
}

// snapshotted makes hooks over a pool dir holding volume vol-0abc with
// content, snapshotted by i-1 as snap-01.
func snapshotted(t *testing.T, content string) (h *Hooks, poolDir string) {
	t.Helper()
	poolDir = t.TempDir()
	h, err := NewHooks("", poolDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.ImagePath("vol-0abc"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.OnSnapshot(context.Background(), "i-1", "vol-0abc", "snap-01"); err != nil {
		t.Fatal(err)
	}
	return h, poolDir
}

func TestOnSnapshotCopiesTheImage(t *testing.T) {
	h, poolDir := snapshotted(t, "point in time")
	// Writes after the call must not reach the snapshot.
	if err := os.WriteFile(h.ImagePath("vol-0abc"), []byte("later"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(poolDir, "snap-01.img"))
	if err != nil || string(got) != "point in time" {
		t.Fatalf("snapshot content %q, %v", got, err)
	}
	c, ok := h.Clones()["snap-01"]
	if !ok || c.VolumeID != "vol-0abc" || c.InstanceID != "i-1" || c.Duration <= 0 {
		t.Fatalf("clone record %+v", c)
	}
	if err := h.OnSnapshot(context.Background(), "i-1", "vol-0abc", "snap-01"); err == nil {
		t.Fatal("overwrote an existing snapshot image")
	}
	if err := h.OnSnapshot(context.Background(), "i-1", "vol-0root", "snap-02"); err == nil || !strings.Contains(err.Error(), "no image") {
		t.Fatalf("snapshot of a volume without image: %v", err)
	}
	if err := h.OnSnapshot(context.Background(), "i-1", "../etc", "snap-03"); err == nil {
		t.Fatal("accepted a path in the volume id")
	}
}

func TestScriptEnv(t *testing.T) {
	env := scriptEnv([]string{"HOME=/root", "PATH=/usr/bin", "SSM_action=thaw"}, "/opt/q/bin", []string{"X=1"})
	joined := strings.Join(env, "\n")
	if !strings.Contains(joined, "PATH=/opt/q/bin:/usr/bin") || strings.Contains(joined, "SSM_action") || !strings.Contains(joined, "X=1") || !strings.Contains(joined, "HOME=/root") {
		t.Fatalf("scriptEnv = %q", env)
	}
}

func TestOnDeleteSnapshotFreesTheImage(t *testing.T) {
	h, _ := snapshotted(t, "data")
	if err := h.OnDeleteSnapshot(context.Background(), "snap-01", "vol-0abc"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.SnapshotPath("snap-01")); !os.IsNotExist(err) {
		t.Fatalf("image still there after delete: %v", err)
	}
	if _, ok := h.Clones()["snap-01"]; ok {
		t.Fatal("deleted snapshot still listed as a clone")
	}
	if _, err := os.Stat(h.ImagePath("vol-0abc")); err != nil {
		t.Fatalf("the volume image went with the snapshot: %v", err)
	}
	// A snapshot without an image (the root volume's) has nothing to free.
	if err := h.OnDeleteSnapshot(context.Background(), "snap-02", "vol-0root"); err != nil {
		t.Fatalf("delete of an image-less snapshot: %v", err)
	}
	if err := h.OnDeleteSnapshot(context.Background(), "../x", "vol-0abc"); err == nil {
		t.Fatal("accepted a path in the snapshot id")
	}
}

func TestInstallValidatesSendCommandLikeSSM(t *testing.T) {
	h, err := NewHooks(fakeHostagent(t, `echo ran; exit 0`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := &awslocal.Server{}
	h.Install(srv)
	if srv.Documents[DefaultDocumentName] != h.Document || srv.OnDeleteSnapshot == nil || srv.RunCommand == nil || srv.OnSnapshot == nil {
		t.Fatalf("Install left hooks unset: %+v", srv)
	}
}

// The verify document is served too: the real QuiesceVerify script runs the
// (fake) hostagent with the parameters as arguments.
func TestRunCommandRunsTheVerifyDocument(t *testing.T) {
	bin := fakeHostagent(t, `printf '{"argv":"%s"}\n' "$*"; exit ${FAKE_EXIT:-0}`)
	h, err := NewHooks(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := awslocal.New()
	h.Install(s)
	if s.Documents[DefaultVerifyDocumentName] == nil || s.Documents[DefaultDocumentName] == nil {
		t.Fatalf("documents served: %v", s.Documents)
	}
	h.Env = []string{"FAKE_EXIT=6"}
	res := h.RunCommand(context.Background(), awslocal.Invocation{CommandID: "c1", InstanceID: "i-1", DocumentName: DefaultVerifyDocumentName,
		Parameters: map[string][]string{"volumes": {"vol-0123456789abcdef0,vol-0fedcba9876543210"}, "expectGtid": {"0-1-42"},
			"checkSql": {"/etc/q/checks.sql"}, "timeout": {"50m"}, "runId": {"r-1"}}})
	want := `{"argv":"verify --volume vol-0123456789abcdef0 --volume vol-0fedcba9876543210 --expect-gtid 0-1-42 --check-sql /etc/q/checks.sql --timeout 50m --run-id r-1"}` + "\n"
	if res.Status != "Failed" || res.ResponseCode != 6 || res.Stdout != want {
		t.Fatalf("status %s code %d stdout %q, want Failed 6 %q; stderr %q", res.Status, res.ResponseCode, res.Stdout, want, res.Stderr)
	}
}
