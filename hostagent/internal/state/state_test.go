package state

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestWriteReadListPrune(t *testing.T) {
	root := t.TempDir()
	d, err := Open(filepath.Join(root, "q"))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(d.Path)
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v", st.Mode().Perm())
	}
	r := &Run{RunID: "run-1", Status: StatusHeld, StartedAt: time.Now(), Mounts: []Mount{{Path: "/data", Dev: 42}}}
	if err := d.Write(r); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(d.Path, "run-1.json"))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v", fi.Mode().Perm())
	}
	got, err := d.Read("run-1")
	if err != nil || got.Mounts[0].Dev != 42 || !got.Active() {
		t.Fatalf("read back %+v, %v", got, err)
	}
	if _, err := d.Read("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing run: %v", err)
	}
	if err := d.Write(&Run{RunID: "../escape"}); err == nil {
		t.Fatal("bad run id written")
	}
	old := &Run{RunID: "old", Status: StatusThawed, StartedAt: time.Now().Add(-time.Hour)}
	if err := d.Write(old); err != nil {
		t.Fatal(err)
	}
	runs, err := d.List()
	if err != nil || len(runs) != 2 || runs[0].RunID != "old" {
		t.Fatalf("list: %v %v", runs, err)
	}
	d.Prune(time.Now().Add(time.Minute)) // everything finished is older than this
	runs, _ = d.List()
	if len(runs) != 1 || runs[0].RunID != "run-1" {
		t.Fatalf("prune must keep active runs only: %v", runs)
	}
	entries, _ := os.ReadDir(d.Path)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Fatalf("temp file left: %s", e.Name())
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "f")
	os.WriteFile(file, nil, 0o600)
	bad := []string{"relative", file, "/" + strings.Repeat("x", 90)}
	if os.Geteuid() == 0 { // only root can give a directory away
		foreign := filepath.Join(root, "foreign")
		os.Mkdir(foreign, 0o700)
		if err := os.Chown(foreign, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		bad = append(bad, foreign)
	}
	for _, p := range bad {
		if _, err := Open(p); err == nil {
			t.Errorf("Open(%q) accepted", p)
		}
	}
}

func TestProcAlive(t *testing.T) {
	self := Self()
	if !self.Alive() {
		t.Fatal("self not alive")
	}
	if (Proc{PID: self.PID, Start: self.Start + 1}).Alive() {
		t.Fatal("reused pid (different start time) counted alive")
	}
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p, err := ProcOf(cmd.Process.Pid)
	if err != nil || !p.Alive() {
		t.Fatalf("child: %v %v", p, err)
	}
	cmd.Process.Kill()
	// Not reaped yet: a zombie must count as dead.
	deadline := time.Now().Add(5 * time.Second)
	for p.Alive() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if p.Alive() {
		t.Fatal("killed (zombie) child still alive")
	}
	cmd.Wait()
}

func TestLockExcludes(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := d.Lock(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := d.Lock(50 * time.Millisecond); err == nil {
		t.Fatal("second lock granted while held")
	}
	if time.Since(start) > time.Second {
		t.Fatal("lock wait not bounded")
	}
	unlock()
	unlock2, err := d.Lock(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	unlock2()
}

func TestUntilMono(t *testing.T) {
	if d := UntilMono(MonoNow() + int64(time.Second)); d < 900*time.Millisecond || d > time.Second {
		t.Fatalf("UntilMono = %v", d)
	}
}

func TestValidRunIDMatchesPattern(t *testing.T) {
	re := regexp.MustCompile(RunIDPattern)
	for _, id := range []string{"", "a", "A-1", "-a", "a-", "a_b", "a b", "ü", "0" + strings.Repeat("x", 63),
		"0" + strings.Repeat("x", 64), "run-2026-11-25T10", "a.b", "a/b", "a\n"} {
		if got, want := ValidRunID(id), re.MatchString(id); got != want {
			t.Errorf("ValidRunID(%q) = %v, pattern says %v", id, got, want)
		}
	}
}

// An unreadable or removed active record is read from its redundant copy,
// by Read and by the lists recovery walks; a finished record drops the copy.
func TestUnreadableRecordFallsBackToCopy(t *testing.T) {
	d := tempDir(t)
	run := &Run{RunID: "r1", Status: StatusHeld, Mounts: []Mount{{Path: "/a"}}}
	if err := d.Write(run); err != nil {
		t.Fatal(err)
	}
	for _, damage := range []string{"truncated", "garbled", "removed"} {
		t.Run(damage, func(t *testing.T) {
			f := filepath.Join(d.Path, "r1.json")
			var err error
			switch damage {
			case "truncated":
				err = os.WriteFile(f, nil, 0o600)
			case "garbled":
				err = os.WriteFile(f, []byte("{\"run_id\": \"r1\", \"sta"), 0o600)
			case "removed":
				err = os.Remove(f)
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Read("r1")
			if err != nil || got.Status != StatusHeld || len(got.Mounts) != 1 || got.Mounts[0].Path != "/a" {
				t.Fatalf("Read of a %s record: %+v, %v", damage, got, err)
			}
			active, err := d.Active()
			if err != nil || len(active) != 1 || active[0].RunID != "r1" {
				t.Fatalf("Active with a %s record: %+v, %v", damage, active, err)
			}
		})
	}
	run.Status = StatusThawed
	if err := d.Write(run); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Path, "r1"+copySuffix)); !os.IsNotExist(err) {
		t.Fatalf("copy of a finished run kept: %v", err)
	}
	if got, err := d.Read("r1"); err != nil || got.Status != StatusThawed {
		t.Fatalf("finished run: %+v, %v", got, err)
	}
}

// A finished run that cannot be stored (full dir) must not stay recorded as
// active: that record would keep its mounts busy for every later freeze.
func TestFinishedRunUnstorableLeavesNoActiveRecord(t *testing.T) {
	d := tempDir(t)
	run := &Run{RunID: "r1", Status: StatusStarting, Mounts: []Mount{{Path: "/a"}}}
	if err := d.Write(run); err != nil {
		t.Fatal(err)
	}
	// done/ cannot be created: a file is in its way (as ENOSPC would stop it).
	if err := os.WriteFile(filepath.Join(d.Path, "done"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	run.Status = StatusFailed
	if err := d.Write(run); err == nil {
		t.Fatal("write of an unstorable finished run reported success")
	}
	if active, _ := d.Active(); len(active) != 0 {
		t.Fatalf("finished run still active: %+v", active[0])
	}
}

// Prune removes holder sockets nobody listens on any more (left by killed
// holders), but keeps a live holder's and an active run's.
func TestPruneRemovesStaleSockets(t *testing.T) {
	d := tempDir(t)
	listen := func(id string) *net.UnixListener {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: d.SocketPath(id), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		return ln
	}
	listen("stale").Close()
	live := listen("live")
	defer live.Close()
	listen("active").Close() // its holder is about to listen: never pruned under an active run
	if err := d.Write(&Run{RunID: "active", Status: StatusStarting}); err != nil {
		t.Fatal(err)
	}
	d.Prune(time.Now().Add(-time.Hour))
	for id, want := range map[string]bool{"stale": false, "live": true, "active": true} {
		if _, err := os.Stat(d.SocketPath(id)); (err == nil) != want {
			t.Errorf("socket of %s: exists=%v, want %v", id, err == nil, want)
		}
	}
}

// tempDir opens a state dir of the test's own.
func tempDir(t *testing.T) *Dir {
	t.Helper()
	d, err := Open(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}
