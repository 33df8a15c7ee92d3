package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/hostagent/internal/restore"
	"github.com/quiesce/quiesce/hostagent/internal/state"
)

// corruptPages overwrites the middle of every B-tree page after the index
// roots (page 3 is the clustered index's root, 4 the secondary's) of a
// tablespace: the checksums no longer match.
func corruptPages(t testing.TB, ibd string) {
	t.Helper()
	f, err := os.OpenFile(ibd, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	const page = 16384
	garbage := bytes.Repeat([]byte{0xA5}, 200)
	n := 0
	for p := int64(5); (p+1)*page <= st.Size(); p++ {
		if _, err := f.WriteAt(garbage, p*page+4000); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n < 5 {
		t.Fatalf("%s has only %d pages after the roots", ibd, n)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// A damaged page: the source was shut down slowly (every page in its
// tablespace, nothing left for redo to repair), then B-tree pages of
// shop.orders were overwritten. Verify must fail naming the table.
func TestVerifyDamagedPage(t *testing.T) {
	snap := makeSnapshot(t, "xfs", snapshotOptions{cleanShutdown: true, beforeCopy: func(t testing.TB, datadir string) {
		corruptPages(t, filepath.Join(datadir, "shop", "orders.ibd"))
	}})
	e := newVerifyEnv(t)
	// The slow shutdown appended a stop event to the binlog after the
	// position was read: only the GTID is tagged here.
	r, rep := e.verify(e.args(snap, "--expect-gtid", snap.gtid)...)
	if r.code != contract.ExitVerifyFailed || rep.OK || len(rep.Problems) != 1 {
		t.Fatalf("exit %d ok=%v problems %q\nstderr: %s", r.code, rep.OK, rep.Problems, r.stderr)
	}
	named := false
	for _, f := range rep.TablesFailed {
		named = named || f.Table == "`shop`.`orders`"
	}
	if !named && !strings.Contains(strings.Join(rep.Problems, " "), "orders") {
		t.Fatalf("nothing names shop.orders: failed %+v problems %q", rep.TablesFailed, rep.Problems)
	}
	t.Logf("tables_failed %+v; problems %q", rep.TablesFailed, rep.Problems)
}

// background is a hostagent verify or clone running as a subprocess.
type background struct {
	cmd       *exec.Cmd
	out, errb bytes.Buffer
	done      chan struct{}
}

// startBackground starts hostagent with args; the test's cleanup kills it
// if it is still running.
func startBackground(t testing.TB, args ...string) *background {
	t.Helper()
	b := &background{cmd: exec.Command(agentBin, args...), done: make(chan struct{})}
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.errb
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			b.cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

func (e *verifyEnv) start(args ...string) *background { return startBackground(e.t, args...) }

// waitFor polls cond every tick until it holds; the run ending first, or
// within passing, fails the test naming what was awaited.
func (b *background) waitFor(t testing.TB, what string, within, tick time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		select {
		case <-b.done:
			t.Fatalf("the run ended before %s: %s\n%s", what, b.errb.String(), b.out.String())
		case <-time.After(tick):
		}
	}
	t.Fatalf("%s: not within %v", what, within)
}

// exit waits for the run to end and returns its exit code.
func (b *background) exit(t testing.TB, within time.Duration) int {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(within):
		t.Fatalf("the run did not finish within %v", within)
	}
	return b.cmd.ProcessState.ExitCode()
}

func (b *background) wait(t *testing.T, within time.Duration) (int, contract.VerifyReport) {
	t.Helper()
	code := b.exit(t, within)
	var rep contract.VerifyReport
	decodeOne(t, b.out.String(), &rep)
	return code, rep
}

// waitServer waits until the run's journal records a live server, and returns it.
func (e *verifyEnv) waitServer(t *testing.T, b *background) state.Proc {
	t.Helper()
	var srv state.Proc
	b.waitFor(t, "its server ran", 2*time.Minute, 20*time.Millisecond, func() bool {
		paths, _ := filepath.Glob(filepath.Join(e.stateDir, "restore", "run-*.json"))
		for _, p := range paths {
			var j restore.Journal
			if data, err := os.ReadFile(p); err == nil && json.Unmarshal(data, &j) == nil && j.Server.Alive() {
				srv = j.Server
				return true
			}
		}
		return false
	})
	return srv
}

// waitChecking waits until the run's server executes the operator's
// SLEEP check: verify is then past the start, in its checks.
func (e *verifyEnv) waitChecking(t *testing.T, b *background) {
	t.Helper()
	b.waitFor(t, "its checks ran", 2*time.Minute, 50*time.Millisecond, func() bool {
		socks, _ := filepath.Glob(filepath.Join(e.workDir, restore.WorkDirPrefix+"*", "run", "mysqld.sock"))
		for _, sock := range socks {
			if sleeping(sock) {
				return true
			}
		}
		return false
	})
}

// sleeping reports whether the server on sock runs a SLEEP statement.
func sleeping(sock string) bool {
	db, err := sql.Open("mysql", "root@unix("+sock+")/?timeout=1s")
	if err != nil {
		return false
	}
	defer db.Close()
	var n int
	err = db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP%'").Scan(&n)
	return err == nil && n > 0
}

// slowChecks keep the server up for a while after it started.
func slowChecks(t *testing.T, seconds string) string {
	return writeChecks(t, "SELECT SLEEP("+seconds+") = 0;\n")
}

func TestVerifyBusyVolume(t *testing.T) {
	snap := makeSnapshot(t, "xfs", snapshotOptions{})
	e := newVerifyEnv(t)
	first := e.start(append(e.args(snap), "--check-sql", slowChecks(t, "3"))...)
	srv := e.waitServer(t, first)
	// The datadir belongs to mysql: so does the server, not root.
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", srv.PID)); err == nil {
		if uid := grepLines(string(status), "Uid:"); strings.Fields(uid)[1] == "0" {
			t.Errorf("server runs as root: %s", uid)
		}
	}
	r, _ := e.verify(e.args(snap)...)
	if r.code != contract.ExitBusy || !strings.Contains(r.stderr, snap.volume) {
		t.Errorf("second verify: exit %d, stderr %q; want 3 naming the volume", r.code, r.stderr)
	}
	if code, rep := first.wait(t, 2*time.Minute); code != 0 || !rep.OK {
		t.Errorf("first verify: exit %d, problems %q", code, rep.Problems)
	}
}

func TestVerifySIGTERMUndoesEverything(t *testing.T) {
	snap := makeSnapshot(t, "ext4", snapshotOptions{})
	e := newVerifyEnv(t)
	b := e.start(append(e.args(snap), "--check-sql", slowChecks(t, "60"))...)
	srv := e.waitServer(t, b)
	e.waitChecking(t, b)
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, rep := b.wait(t, time.Minute)
	if code != int(contract.ExitFailed) || rep.OK || !strings.Contains(strings.Join(rep.Problems, " "), "interrupted by terminated") {
		t.Errorf("exit %d, problems %q; want 1 and the signal named", code, rep.Problems)
	}
	if srv.Alive() {
		t.Errorf("server pid %d still runs", srv.PID)
	}
	if _, ok := rep.TimingsMS["shutdown"]; !ok {
		t.Errorf("the server was not shut down by verify: timings %v", rep.TimingsMS)
	}
}

func TestVerifyTimeoutUndoesEverything(t *testing.T) {
	snap := makeSnapshot(t, "xfs", snapshotOptions{})
	e := newVerifyEnv(t)
	r, rep := e.verify(append(e.args(snap), "--check-sql", slowChecks(t, "60"), "--timeout", "8s")...)
	if r.code != contract.ExitFailed || !strings.Contains(strings.Join(rep.Problems, " "), "--timeout 8s reached") {
		t.Errorf("exit %d, problems %q; want 1 naming the timeout", r.code, rep.Problems)
	}
	if r.elapsed > 40*time.Second {
		t.Errorf("took %v after an 8 s timeout", r.elapsed)
	}
}

// SIGKILL cannot be handled: the kernel kills the server (parent-death
// signal), the mounts stay. The next verify finds the dead run in its
// journal, unmounts and removes its work dir, and runs normally.
func TestVerifyAfterSIGKILLCleansUp(t *testing.T) {
	snap := makeSnapshot(t, "xfs", snapshotOptions{})
	e := newVerifyEnv(t)
	b := e.start(append(e.args(snap), "--check-sql", slowChecks(t, "60"))...)
	srv := e.waitServer(t, b)
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-b.done
	for i := 0; i < 100 && srv.Alive(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if srv.Alive() {
		t.Fatalf("server pid %d outlived its killed verify", srv.PID)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if !strings.Contains(string(mounts), e.workDir) {
		t.Fatal("expected the killed run's mount to be left behind")
	}
	if !snap.loop.Busy() {
		t.Error("the device is not in use, yet its mount is left?")
	}
	r, rep := e.verify(e.args(snap, tagged(snap)...)...)
	if r.code != 0 || !rep.OK {
		t.Fatalf("next verify: exit %d, problems %q\n%s", r.code, rep.Problems, r.stderr)
	}
}
