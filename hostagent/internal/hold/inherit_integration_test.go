package hold

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/hostagent/internal/state"
	"github.com/quiesce/quiesce/internal/fsfreeze"
	"github.com/quiesce/quiesce/test/fixture"
)

// The guardian may start after the holder froze (a loaded machine), when the
// mount point could already be unmounted lazily: descriptors it opened then
// would reach the wrong filesystem. It inherits the holder's, opened before
// the first freeze, and thaws through them.
func TestGuardianThawsThroughInheritedDescriptors(t *testing.T) {
	fixture.RequireLoopFS(t, "xfs")
	dir := t.TempDir()
	fs, err := fixture.NewLoopFS(dir, "xfs", 300)
	if err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(dir, "again")
	t.Cleanup(func() {
		// Get the detached filesystem back through its device and thaw it.
		exec.Command("mkdir", "-p", again).Run()
		if exec.Command("mount", fs.Device, again).Run() == nil {
			fsfreeze.Thaw(again)
			exec.Command("umount", again).Run()
		}
		exec.Command("mount", fs.Device, fs.Mount).Run() // for the fixture's own cleanup
		fs.Close()
	})
	var st = statDev(t, fs.Mount)
	mounts := []state.Mount{{Path: fs.Mount, Dev: st}}

	holder := &Agent{Dir: &state.Dir{Path: t.TempDir()}}
	holder.keepMountFDs(mounts)
	files, childFDs := holder.inheritableMountFDs(mounts)
	if len(files) != 1 || childFDs[fs.Mount] != 3 {
		t.Fatalf("inheritable descriptors %v / %v", files, childFDs)
	}
	defer files[0].Close()
	if err := fsfreeze.Freeze(fs.Mount, st); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("umount", "-l", fs.Mount).CombinedOutput(); err != nil {
		t.Fatalf("umount -l: %v: %s", err, out)
	}

	// A guardian that opens the mounts only now finds another filesystem...
	late := &Agent{Dir: holder.Dir}
	late.keepMountFDs(mounts)
	if _, err := late.thawFS(mounts[0]); err == nil {
		t.Fatal("a descriptor opened after the unmount thawed something")
	}
	// ...one that inherited the holder's reaches the frozen one (in this
	// process the inherited descriptor keeps its own number, not 3).
	guardian := &Agent{Dir: holder.Dir}
	guardian.adoptMountFDs(mounts, map[string]int{fs.Mount: int(files[0].Fd())})
	guardian.keepMountFDs(mounts)
	start := time.Now()
	if was, err := guardian.thawFS(mounts[0]); err != nil || !was {
		t.Fatalf("thaw through the inherited descriptor: was frozen %v, %v", was, err)
	}
	t.Logf("thawed the detached filesystem in %v", time.Since(start))
}

func statDev(t *testing.T, path string) uint64 {
	t.Helper()
	fd, err := fsfreeze.Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFD(fd)
	return devOf(t, fd)
}

func closeFD(fd int) { unix.Close(fd) }

func devOf(t *testing.T, fd int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Dev
}
