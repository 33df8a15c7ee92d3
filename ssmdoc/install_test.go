package ssmdoc_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeAWS stands in for `aws [--region R] s3 cp --only-show-errors s3://b/k dst`,
// serving objects from $FAKE_S3_ROOT/b/k and logging each call's argv.
const fakeAWS = `#!/bin/bash
printf '%s\n' "$*" >> "$FAKE_AWS_LOG"
args=("$@")
if [ "${args[0]}" = "--region" ]; then args=("${args[@]:2}"); fi
[ "${args[0]} ${args[1]} ${args[2]}" = "s3 cp --only-show-errors" ] || { echo "fake aws: unexpected $*" >&2; exit 254; }
src="${args[3]#s3://}"
[ -f "$FAKE_S3_ROOT/$src" ] || { echo "fake aws: NoSuchKey $src" >&2; exit 1; }
cp "$FAKE_S3_ROOT/$src" "${args[4]}"
`

// fakeUname reports the machine named by $FAKE_MACHINE.
const fakeUname = `#!/bin/bash
echo "$FAKE_MACHINE"
`

type installEnv struct {
	root, s3, bin, installDir, awsLog string
}

func newInstallEnv(t *testing.T) installEnv {
	t.Helper()
	requireBash(t)
	root := t.TempDir()
	e := installEnv{
		root: root, s3: filepath.Join(root, "s3"), bin: filepath.Join(root, "bin"),
		installDir: filepath.Join(root, "usr-local-bin"), awsLog: filepath.Join(root, "aws.log"),
	}
	for _, d := range []string{e.s3, e.bin, e.installDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(e.bin, "aws"), fakeAWS, 0o755)
	write(t, filepath.Join(e.bin, "uname"), fakeUname, 0o755)
	return e
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func fakeRelease(version string) string {
	return "#!/bin/sh\n[ \"$1\" = version ] && echo 'hostagent " + version + " (commit fake)'\n"
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func (e installEnv) run(t *testing.T, machine string, params map[string]string) (stdout, stderr string, code int) {
	t.Helper()
	d := mustLoad(t, "install")
	script, env, err := d.Render(params)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	scriptPath := filepath.Join(e.root, "_script.sh")
	write(t, scriptPath, script, 0o700)
	cmd := exec.Command("sh", "-c", scriptPath)
	cmd.Env = append([]string{
		"PATH=" + e.bin + ":/usr/bin:/bin",
		"FAKE_S3_ROOT=" + e.s3, "FAKE_AWS_LOG=" + e.awsLog, "FAKE_MACHINE=" + machine,
		"QUIESCE_INSTALL_DIR=" + e.installDir,
		// A real hostagent's `version` recovers stale runs in its state
		// directory first: keep it away from the machine's /run/quiesce.
		"QUIESCE_STATE_DIR=" + filepath.Join(e.root, "state"),
	}, env...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err = cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return so.String(), se.String(), code
}

// leftovers lists anything in the install dir besides hostagent (staging
// directories must always be removed).
func (e installEnv) leftovers(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(e.installDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ent := range ents {
		if ent.Name() != "hostagent" {
			out = append(out, ent.Name())
		}
	}
	return out
}

func TestInstallHostagent(t *testing.T) {
	e := newInstallEnv(t)
	arm := fakeRelease("v1.2.3")
	amd := fakeRelease("v1.2.3-amd64")
	rel := filepath.Join(e.s3, "releases-bucket", "quiesce", "v1.2.3")
	write(t, filepath.Join(rel, "hostagent-linux-arm64"), arm, 0o644)
	write(t, filepath.Join(rel, "hostagent-linux-amd64"), amd, 0o644)
	write(t, filepath.Join(rel, "SHA256SUMS"), sum(amd)+"  hostagent-linux-amd64\n"+sum(arm)+"  hostagent-linux-arm64\n", 0o644)

	stdout, stderr, code := e.run(t, "aarch64", map[string]string{
		"bucket": "releases-bucket", "prefix": "quiesce", "version": "v1.2.3", "region": "eu-west-1",
	})
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if stdout != "hostagent v1.2.3 (commit fake)\n" {
		t.Errorf("stdout = %q, want the installed `hostagent version`", stdout)
	}
	got, err := os.ReadFile(filepath.Join(e.installDir, "hostagent"))
	if err != nil || string(got) != arm {
		t.Fatalf("installed binary = %q, %v; want the arm64 release", got, err)
	}
	if fi, _ := os.Stat(filepath.Join(e.installDir, "hostagent")); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, want 0755", fi.Mode().Perm())
	}
	if l := e.leftovers(t); len(l) != 0 {
		t.Errorf("left behind %v", l)
	}
	log, _ := os.ReadFile(e.awsLog)
	wantLog := "--region eu-west-1 s3 cp --only-show-errors s3://releases-bucket/quiesce/v1.2.3/SHA256SUMS " +
		filepath.Join(e.installDir) // staging dir lives in the install dir
	if !strings.HasPrefix(string(log), wantLog) || !strings.Contains(string(log), "s3://releases-bucket/quiesce/v1.2.3/hostagent-linux-arm64 ") {
		t.Errorf("aws calls:\n%s", log)
	}

	// amd64, no prefix, no region: the other binary, URL without prefix.
	rel2 := filepath.Join(e.s3, "b22", "v1.2.3")
	write(t, filepath.Join(rel2, "hostagent-linux-amd64"), amd, 0o644)
	write(t, filepath.Join(rel2, "SHA256SUMS"), sum(amd)+" *hostagent-linux-amd64\n", 0o644)
	os.Remove(e.awsLog)
	stdout, stderr, code = e.run(t, "x86_64", map[string]string{"bucket": "b22", "version": "v1.2.3"})
	if code != 0 || stdout != "hostagent v1.2.3-amd64 (commit fake)\n" {
		t.Fatalf("amd64: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	log, _ = os.ReadFile(e.awsLog)
	if !strings.HasPrefix(string(log), "s3 cp --only-show-errors s3://b22/v1.2.3/SHA256SUMS ") {
		t.Errorf("aws calls:\n%s", log)
	}
}

func TestInstallHostagentRefuses(t *testing.T) {
	good := fakeRelease("v2")
	broken := "#!/bin/sh\nexit 3\n"
	cases := []struct {
		name    string
		sums    string
		binary  string
		machine string
		want    string
	}{
		{"checksum mismatch", sum(good+"tampered") + "  hostagent-linux-arm64\n", good, "aarch64", "checksum mismatch"},
		{"no entry for arch", sum(good) + "  hostagent-linux-amd64\n", good, "aarch64", "no valid entry"},
		{"malformed sum", "deadbeef  hostagent-linux-arm64\n", good, "aarch64", "no valid entry"},
		{"binary does not run", sum(broken) + "  hostagent-linux-arm64\n", broken, "aarch64", "does not run"},
		{"unsupported arch", sum(good) + "  hostagent-linux-arm64\n", good, "riscv64", "unsupported architecture"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newInstallEnv(t)
			rel := filepath.Join(e.s3, "bkt", "v2")
			write(t, filepath.Join(rel, "hostagent-linux-arm64"), c.binary, 0o644)
			write(t, filepath.Join(rel, "SHA256SUMS"), c.sums, 0o644)
			old := fakeRelease("v1-old")
			write(t, filepath.Join(e.installDir, "hostagent"), old, 0o755)

			stdout, stderr, code := e.run(t, c.machine, map[string]string{"bucket": "bkt", "version": "v2"})
			if code == 0 {
				t.Fatalf("exit 0, stdout %q", stdout)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr = %q, want it to mention %q", stderr, c.want)
			}
			if got, _ := os.ReadFile(filepath.Join(e.installDir, "hostagent")); string(got) != old {
				t.Errorf("installed binary was replaced: %q", got)
			}
			if l := e.leftovers(t); len(l) != 0 {
				t.Errorf("left behind %v", l)
			}
		})
	}

	t.Run("missing object", func(t *testing.T) {
		e := newInstallEnv(t)
		_, stderr, code := e.run(t, "aarch64", map[string]string{"bucket": "nothere", "version": "v2"})
		if code == 0 || !strings.Contains(stderr, "download of s3://nothere/v2/SHA256SUMS failed") {
			t.Errorf("exit %d stderr %q", code, stderr)
		}
		if _, err := os.Stat(filepath.Join(e.installDir, "hostagent")); err == nil {
			t.Error("something was installed")
		}
		if l := e.leftovers(t); len(l) != 0 {
			t.Errorf("left behind %v", l)
		}
	})
}

// The real thing: build hostagent the way `make package` does, publish it
// with a SHA256SUMS made by sha256sum, and install it with the document.
func TestInstallRealHostagentBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds hostagent; skipped with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	machine := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	if machine == "" {
		t.Skipf("no release is built for %s", runtime.GOARCH)
	}
	e := newInstallEnv(t)
	rel := filepath.Join(e.s3, "rel-bucket", "quiesce", "v0.0.0-test")
	if err := os.MkdirAll(rel, 0o755); err != nil {
		t.Fatal(err)
	}
	name := "hostagent-linux-" + runtime.GOARCH
	build := exec.Command(goBin, "build", "-trimpath", "-ldflags",
		"-s -w -X github.com/quiesce/quiesce/internal/buildinfo.Version=v0.0.0-test",
		"-o", filepath.Join(rel, name), "github.com/quiesce/quiesce/hostagent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build hostagent: %v\n%s", err, out)
	}
	sums := exec.Command("sh", "-c", "sha256sum hostagent-linux-* > SHA256SUMS")
	sums.Dir = rel
	if out, err := sums.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum: %v\n%s", err, out)
	}
	stdout, stderr, code := e.run(t, machine, map[string]string{"bucket": "rel-bucket", "prefix": "quiesce", "version": "v0.0.0-test"})
	if code != 0 {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	if !strings.HasPrefix(stdout, "hostagent v0.0.0-test") {
		t.Errorf("stdout = %q, want `hostagent version` of the installed build", stdout)
	}
	if l := e.leftovers(t); len(l) != 0 {
		t.Errorf("left behind %v", l)
	}
}
