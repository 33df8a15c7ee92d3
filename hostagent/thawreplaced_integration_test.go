package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/fsfreeze"
)

// TestThawAfterLazyUnmount: after `umount -l` of a held mount, the path is a
// plain directory of the parent filesystem and the frozen filesystem lives on,
// detached (and whatever had files open on it, mariadbd say, stays blocked).
// FITHAW on the path would hit the parent (EINVAL: "not frozen"); the thaw
// used to answer thawed:true, exit 0, with the filesystem still frozen. The
// holder and the guardian keep a descriptor on each mount from before the
// freeze and thaw through it; with neither left, the thaw from the state file
// must say it could not thaw, and never FITHAW a filesystem it did not freeze.
func TestThawAfterLazyUnmount(t *testing.T) {
	for _, tc := range []struct {
		name     string
		kill     []string // processes SIGKILLed after the unmount
		wantCode contract.ExitCode
		thawed   bool
	}{
		{"holder thaws", nil, contract.ExitOK, true},
		{"guardian thaws at the deadline", []string{"holder"}, contract.ExitLate, true},
		{"nobody left", []string{"guardian", "holder"}, contract.ExitFailed, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := loopFS(t, "xfs")
			e := newEnv(t)
			rep := e.freeze(t, "--mount", fs.Mount, "--timeout", "1500ms", "--run-id", "lazy-umount")
			if out, err := exec.Command("umount", "-l", fs.Mount).CombinedOutput(); err != nil {
				t.Fatalf("umount -l: %v: %s", err, out)
			}
			// Get the detached filesystem back through its device; remember
			// whether it was still frozen; thaw it so the fixture can clean up.
			again := filepath.Join(filepath.Dir(fs.Mount), "again")
			remount := func() (wasFrozen bool) {
				os.Mkdir(again, 0o755)
				if out, err := exec.Command("mount", fs.Device, again).CombinedOutput(); err != nil {
					t.Errorf("remount %s: %v: %s", fs.Device, err, out)
					return false
				}
				wasFrozen, _ = fsfreeze.Thaw(again)
				exec.Command("umount", again).Run()
				exec.Command("mount", fs.Device, fs.Mount).Run() // for the fixture's own cleanup
				return wasFrozen
			}
			remounted := false
			t.Cleanup(func() {
				if !remounted {
					remount()
				}
			})
			for _, p := range tc.kill {
				pid := rep.HolderPID
				if p == "guardian" {
					pid = rep.GuardianPID
				}
				syscall.Kill(pid, syscall.SIGKILL)
				waitDead(t, pid, 2*time.Second)
			}
			if len(tc.kill) == 1 { // let the guardian act at the deadline
				time.Sleep(time.Until(rep.Deadline) + 300*time.Millisecond)
			}
			r := e.run("thaw", "--run-id", rep.RunID)
			var th contract.ThawReport
			decodeOne(t, r.stdout, &th)
			if r.code != tc.wantCode || len(th.Mounts) != 1 || th.Mounts[0].Thawed != tc.thawed {
				t.Fatalf("thaw: exit %d, report %+v; want exit %d, thawed=%v\nstderr: %s", r.code, th, tc.wantCode, tc.thawed, r.stderr)
			}
			if !tc.thawed && (!strings.Contains(th.Mounts[0].Error, "device changed") || !strings.Contains(r.stderr, fs.Mount)) {
				t.Fatalf("error must say why and name the mount: %q / %q", th.Mounts[0].Error, r.stderr)
			}
			remounted = true
			if stillFrozen := remount(); stillFrozen == tc.thawed {
				t.Fatalf("report says thawed=%v, but the detached filesystem was frozen=%v", tc.thawed, stillFrozen)
			}
		})
	}
}
