package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
)

// A clone whose running server_id is the source's (the built-in start
// without --server-id: MariaDB's default 1, the primary's) is refused with
// exit 2 and undone before replication is configured.
func TestCloneRefusesSourceServerID(t *testing.T) {
	src, primary, pdb := startPrimary(t)
	startWriter(t, pdb).pause()
	snap := snapshotPrimary(t, pdb, src)
	ct := newCloneTarget(t, "repl-secret")
	r, rep := ct.clone(ct.args(snap, primary, "--source-gtid", snap.gtid, "--source-server-id", "1")...)
	if r.code != contract.ExitUsage || rep.ServerID != 1 || !strings.Contains(strings.Join(rep.Problems, " "), "server_id is 1") {
		t.Fatalf("exit %d, server_id %d, problems %q", r.code, rep.ServerID, rep.Problems)
	}
	if rep.Replica != nil {
		t.Errorf("replication was configured: %+v", rep.Replica)
	}
	ct.requireNothingLeft(true)
}

// The target's own server, started and stopped by the operator's commands:
// clone sets its server_id at run time (and says so) and makes it a replica.
func TestCloneWithStartCommand(t *testing.T) {
	src, primary, pdb := startPrimary(t)
	w := startWriter(t, pdb)
	snap := snapshotPrimary(t, pdb, src)
	ct := newCloneTarget(t, "repl-secret")
	mariadbd, err := exec.LookPath("mariadbd")
	if err != nil {
		mariadbd = "/usr/sbin/mariadbd"
	}
	// The "service": a server started from the operator's own option file.
	start := fmt.Sprintf("setsid %s --defaults-file=%s --datadir=%s --user=mysql --skip-slave-start </dev/null >/dev/null 2>&1 &",
		mariadbd, ct.defaults, filepath.Join(ct.mount, "db"))
	stop := fmt.Sprintf("pid=$(cat %s) && kill $pid && while kill -0 $pid 2>/dev/null; do sleep 0.1; done", ct.pidFile)
	r, rep := ct.clone(ct.args(snap, primary, "--source-gtid", snap.gtid, "--server-id", "201", "--source-server-id", "1",
		"--start-command", start, "--stop-command", stop)...)
	requireReplicating(t, r, rep)
	if len(rep.Notes) != 2 || !strings.Contains(rep.Notes[0], "server_id=201") || !strings.Contains(rep.Notes[1], "fstab") {
		t.Errorf("notes %q: want the run-time server_id named", rep.Notes)
	}
	w.pause()
	requireCaughtUp(t, pdb, ct.db())
}

// A source that cannot be reached is waited on until --timeout, then the
// clone fails (exit 6) with the receiver's last error, and is undone.
func TestCloneUnreachableSourceTimesOut(t *testing.T) {
	src, primary, pdb := startPrimary(t)
	startWriter(t, pdb).pause()
	snap := snapshotPrimary(t, pdb, src)
	ct := newCloneTarget(t, "repl-secret")
	args := ct.args(snap, primary, "--source-gtid", snap.gtid, "--server-id", "201")
	for i, a := range args {
		if a == "--source-port" {
			args[i+1] = strconv.Itoa(freeTCPPort(t)) // nobody listens there
		}
		if a == "--timeout" {
			args[i+1] = "12s"
		}
	}
	r, rep := ct.clone(args...)
	if r.code != contract.ExitVerifyFailed || !strings.Contains(strings.Join(rep.Problems, " "), "within --timeout") ||
		rep.Replica == nil || rep.Replica.LastIOErrno == 0 {
		t.Fatalf("exit %d, replica %+v, problems %q", r.code, rep.Replica, rep.Problems)
	}
	ct.requireNothingLeft(true)
}

// A clone killed with SIGKILL while it waits leaves a running server and a
// mount behind; the next clone of the set undoes them first (its journal),
// then clones.
func TestCloneAfterKilledRun(t *testing.T) {
	src, primary, pdb := startPrimary(t)
	startWriter(t, pdb).pause()
	snap := snapshotPrimary(t, pdb, src)
	ct := newCloneTarget(t, "repl-secret")
	args := ct.args(snap, primary, "--source-gtid", snap.gtid, "--server-id", "201")
	dead := append([]string(nil), args...)
	for i, a := range dead {
		if a == "--source-port" {
			dead[i+1] = strconv.Itoa(freeTCPPort(t))
		}
	}
	cmd := exec.Command(agentBin, dead...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(serversUnder(ct.mount)) == 0 || !strings.Contains(readMountinfo(), ct.mount) {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the clone's server never ran: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // into the wait for replication
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if len(serversUnder(ct.mount)) == 0 {
		t.Fatal("the killed run's server is gone already: nothing to clean up")
	}
	r, rep := ct.clone(args...)
	requireReplicating(t, r, rep)
	if pids := serversUnder(ct.mount); len(pids) != 1 {
		t.Errorf("servers on the clone: %v, want exactly the new one", pids)
	}
}

func readMountinfo() string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	return string(b)
}

// A server that cannot start on the clone (here an option it refuses) is a
// failed clone (exit 6) with the server's own words; everything is undone.
func TestCloneServerThatCannotStart(t *testing.T) {
	src, primary, pdb := startPrimary(t)
	startWriter(t, pdb).pause()
	snap := snapshotPrimary(t, pdb, src)
	ct := newCloneTarget(t, "repl-secret")
	cnf, err := os.ReadFile(ct.defaults)
	if err != nil {
		t.Fatal(err)
	}
	writeFile0600(t, ct.defaults, strings.Replace(string(cnf), "[mysqld]\n", "[mysqld]\nno-such-option-here=1\n", 1))
	r, rep := ct.clone(ct.args(snap, primary, "--source-gtid", snap.gtid, "--server-id", "201")...)
	if r.code != contract.ExitVerifyFailed || !strings.Contains(strings.Join(rep.Problems, " "), "no-such-option-here") {
		t.Fatalf("exit %d, problems %q", r.code, rep.Problems)
	}
	ct.requireNothingLeft(true)
	if snap.loop.Busy() {
		t.Error("the volume is still in use")
	}
}

// SIGTERM while the clone waits for replication: exit 1 (interrupted, not a
// verdict on the set), one report, and everything undone.
func TestCloneSIGTERMUndone(t *testing.T) {
	src, primary, pdb := startPrimary(t)
	startWriter(t, pdb).pause()
	snap := snapshotPrimary(t, pdb, src)
	ct := newCloneTarget(t, "repl-secret")
	args := ct.args(snap, primary, "--source-gtid", snap.gtid, "--server-id", "201")
	for i, a := range args {
		if a == "--source-port" {
			args[i+1] = strconv.Itoa(freeTCPPort(t))
		}
	}
	cmd := exec.Command(agentBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(serversUnder(ct.mount)) == 0 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the clone's server never ran: %s %s", out.String(), errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != int(contract.ExitFailed) {
		t.Fatalf("exit %v, want 1\n%s", err, errb.String())
	}
	var rep contract.CloneReport
	decodeOne(t, out.String(), &rep)
	if rep.OK || rep.LeftRunning || !strings.Contains(strings.Join(rep.Problems, " "), "interrupted by terminated") {
		t.Errorf("report %+v", rep)
	}
	ct.requireNothingLeft(true)
}
