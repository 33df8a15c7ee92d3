package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/contract"
)

var renderNow = time.Date(2026, 12, 1, 20, 0, 17, 700_000_000, time.UTC)

func TestRenderStatusTable(t *testing.T) {
	rep := contract.StatusReport{Runs: []contract.RunStatus{
		{RunID: "q-20261201T200000Z-0a1b2c3d", State: "held", LockMode: "backup-stage",
			Mounts:   []string{"/var/lib/mysql", "/var/lib/mysql-binlog"},
			FrozenAt: renderNow.Add(-17 * time.Second), Deadline: time.Date(2026, 12, 1, 20, 0, 30, 0, time.UTC),
			HolderPID: 1234, GuardianPID: 1235, HolderAlive: true, GuardAlive: true},
		{RunID: "wedged", State: "held", LockMode: "none", Mounts: []string{"/data"},
			Deadline:  renderNow.Add(-2500 * time.Millisecond),
			HolderPID: 99, GuardianPID: 100, HolderAlive: false, GuardAlive: true},
		{RunID: "r-2", State: "thawed", ThawedBy: "deadline", LockMode: "ftwrl", Mounts: []string{"/srv/evil\x1b[2J"},
			Deadline:  time.Date(2026, 12, 1, 19, 0, 30, 0, time.UTC),
			HolderPID: 1200, GuardianPID: 1201},
	}}
	want := `RUN                          STATE              LOCK          DEADLINE              LEFT          HOLDER      GUARDIAN    MOUNTS
q-20261201T200000Z-0a1b2c3d  held               backup-stage  2026-12-01 20:00:30Z  12.3s         1234 alive  1235 alive  /var/lib/mysql
                                                                                                                          /var/lib/mysql-binlog
wedged                       held               none          2026-12-01 20:00:15Z  overdue 2.5s  99 dead     100 alive   /data
r-2                          thawed (deadline)  ftwrl         2026-12-01 19:00:30Z  -             1200 dead   1201 dead   "/srv/evil\x1b[2J"
`
	var b bytes.Buffer
	if err := renderStatus(&b, rep, true, renderNow); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	renderStatus(&b, contract.StatusReport{Runs: []contract.RunStatus{}}, true, renderNow)
	if b.String() != "no runs\n" {
		t.Errorf("empty status table = %q", b.String())
	}
}

func TestRenderCheckTable(t *testing.T) {
	ok := contract.CheckReport{OK: true,
		Mounts: []contract.MountReport{
			{Path: "/var/lib/mysql", FSType: "xfs", Device: "/dev/nvme1n1", VolumeIDs: []string{"vol-0abc"}},
			{Path: "/var/lib/mysql-binlog", FSType: "ext4", Device: "/dev/xvdf", VolumeIDs: []string{}, EC2Devices: []string{"/dev/sdf"}},
		},
		Lock: contract.LockInfo{Mode: "backup-stage", Requested: "auto", ServerVersion: "10.11.6-MariaDB", BinlogFile: "binlog.000001", BinlogPos: 692}}
	bad := contract.CheckReport{Mounts: []contract.MountReport{},
		Lock:     contract.LockInfo{Mode: "none", Requested: "none"},
		Problems: []string{`bad usage: --mount "/x": does not exist`, "mysql connect: refused"}}
	cases := []struct {
		name string
		rep  contract.CheckReport
		want string
	}{
		{"ok", ok, `check: OK
MOUNT                  FSTYPE  DEVICE        VOLUMES
/var/lib/mysql         xfs     /dev/nvme1n1  vol-0abc
/var/lib/mysql-binlog  ext4    /dev/xvdf     EC2 device /dev/sdf
lock: backup-stage (requested auto), server 10.11.6-MariaDB, binlog binlog.000001:692
`},
		{"problems", bad, `check: 2 problems
no mount passed preflight
lock: none (requested none)
problems:
  - bad usage: --mount "/x": does not exist
  - mysql connect: refused
`},
	}
	for _, tc := range cases {
		var b bytes.Buffer
		if err := renderCheck(&b, tc.rep, true); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("%s: got:\n%s\nwant:\n%s", tc.name, b.String(), tc.want)
		}
	}
}

// A report that carries failsafe_layers (FreezeReport does; CheckReport and
// RunStatus may) shows them; the renderer reads them from the JSON form.
func TestRenderFailsafeLayers(t *testing.T) {
	type withLayers struct {
		contract.CheckReport
		FailsafeLayers []string `json:"failsafe_layers,omitempty"`
	}
	v := withLayers{CheckReport: contract.CheckReport{OK: true, Lock: contract.LockInfo{Mode: "none"}},
		FailsafeLayers: []string{"guardian", "systemd-timer", "next-invocation"}}
	if got := failsafeLayers(v); strings.Join(got, ",") != "guardian,systemd-timer,next-invocation" {
		t.Fatalf("failsafeLayers = %q", got)
	}
	if got := failsafeLayers(contract.CheckReport{}); got != nil {
		t.Fatalf("failsafeLayers without the field = %q", got)
	}
	var b bytes.Buffer
	writeLayers(&b, failsafeLayers(v))
	if b.String() != "fail-safe layers: guardian, systemd-timer, next-invocation\n" {
		t.Fatalf("layers line %q", b.String())
	}
}

// Not a terminal (a pipe, a file, a buffer): the one JSON object, unchanged.
func TestRenderKeepsJSONWhenNotATerminal(t *testing.T) {
	rep := contract.StatusReport{Runs: []contract.RunStatus{{RunID: "r", State: "held", Mounts: []string{"/d"}}}}
	var b bytes.Buffer
	if err := renderStatus(&b, rep, false, renderNow); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(rep)
	if b.String() != string(want)+"\n" {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) || isTerminal(&b) {
		t.Error("a pipe or a buffer taken for a terminal")
	}
}

// openPTY returns a pseudo-terminal pair; the slave is a real terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("open pts: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// runOnTerminal runs the hostagent binary with stdout on a pseudo-terminal
// (stderr on a pipe) and returns what the terminal shows.
func runOnTerminal(t *testing.T, args ...string) (string, int) {
	t.Helper()
	master, slave := openPTY(t)
	got := make(chan string, 1)
	go func() {
		var b bytes.Buffer
		_, err := io.Copy(&b, master) // ends with EIO once no process has the slave open
		if err != nil && !errors.Is(err, syscall.EIO) {
			b.WriteString("read error: " + err.Error())
		}
		got <- b.String()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, args...)
	cmd.Stdout = slave
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	slave.Close()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("hostagent %v: %v", args, err)
	}
	select {
	case out := <-got:
		return strings.ReplaceAll(out, "\r\n", "\n"), code
	case <-time.After(10 * time.Second):
		t.Fatal("terminal output not readable")
	}
	return "", code
}

func TestStatusAndCheckOnATerminalPrintTables(t *testing.T) {
	dir := shortTempDir(t)
	out, code := runOnTerminal(t, "status", "--state-dir", dir)
	if code != 0 || out != "no runs\n" {
		t.Errorf("status on a terminal: exit %d, %q; want the table (no runs)", code, out)
	}
	out, code = runOnTerminal(t, "status", "--state-dir", dir, "--json")
	if code != 0 || out != `{"runs":[]}`+"\n" {
		t.Errorf("status --json on a terminal: exit %d, %q", code, out)
	}
	missing := dir + "/no-such-mount"
	out, code = runOnTerminal(t, "check", "--state-dir", dir, "--mysql-lock", "none", "--mount", missing)
	if code != int(contract.ExitUsage) || !strings.HasPrefix(out, "check: 1 problem\n") || !strings.Contains(out, "  - bad usage: --mount \""+missing+"\": does not exist\n") {
		t.Errorf("check on a terminal: exit %d, %q", code, out)
	}
	out, code = runOnTerminal(t, "check", "--json", "--state-dir", dir, "--mysql-lock", "none", "--mount", missing)
	var cr contract.CheckReport
	if code != int(contract.ExitUsage) || json.Unmarshal([]byte(out), &cr) != nil || cr.OK {
		t.Errorf("check --json on a terminal: exit %d, %q", code, out)
	}
	// Piped: JSON as before.
	e := &env{t: t, stateDir: dir}
	if r := e.run("status", "--state-dir", dir); r.code != 0 || r.stdout != `{"runs":[]}`+"\n" {
		t.Errorf("status piped: exit %d, %q", r.code, r.stdout)
	}
}

// shortTempDir is a state dir short enough for the holder's socket path.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "qr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir + "/s"
}

// A real held run, seen from a terminal: its row names the run, the mount,
// the time left and both processes alive.
func TestStatusOnTerminalShowsHeldRun(t *testing.T) {
	fs := loopFS(t, "xfs")
	e := newEnv(t)
	rep := e.freeze(t, "--mount", fs.Mount, "--timeout", "30s", "--run-id", "tty-run")
	defer e.thaw(t, rep.RunID, 0)
	out, code := runOnTerminal(t, "status", "--state-dir", e.stateDir)
	t.Logf("terminal:\n%s", out)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "RUN ") {
		t.Fatalf("exit %d, terminal %q", code, out)
	}
	row := strings.Fields(lines[1])
	want := []string{"tty-run", "held", "none"}
	for i, w := range want {
		if row[i] != w {
			t.Errorf("column %d = %q, want %q (row %q)", i, row[i], w, lines[1])
		}
	}
	for _, w := range []string{fmt.Sprintf("%d alive", rep.HolderPID), fmt.Sprintf("%d alive", rep.GuardianPID), fs.Mount, rep.Deadline.UTC().Format("2006-01-02 15:04:05Z")} {
		if !strings.Contains(lines[1], w) {
			t.Errorf("row %q does not show %q", lines[1], w)
		}
	}
	left, err := time.ParseDuration(row[5])
	if err != nil || left <= 0 || left > 30*time.Second {
		t.Errorf("time left %q (%v)", row[5], err)
	}
}
