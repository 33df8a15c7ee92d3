package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quiesce/quiesce/hostagent/internal/fsfreeze"
	"github.com/quiesce/quiesce/report"
)

// TestThawOfALazilyUnmountedMountIsNotReportedThawed: after `umount -l` of a
// held mount, the path is a plain directory of the parent filesystem and the
// frozen filesystem lives on, detached. FITHAW on the path would hit the
// parent (EINVAL: "not frozen") and the thaw used to answer thawed:true, exit
// 0, with the filesystem still frozen. It must say it could not thaw it, and
// never issue FITHAW on a filesystem the run did not freeze.
func TestThawOfALazilyUnmountedMountIsNotReportedThawed(t *testing.T) {
	fs := loopFS(t, "xfs")
	e := newEnv(t)
	rep := e.freeze(t, "--mount", fs.Mount, "--timeout", "20s", "--run-id", "lazy-umount")
	if out, err := exec.Command("umount", "-l", fs.Mount).CombinedOutput(); err != nil {
		t.Fatalf("umount -l: %v: %s", err, out)
	}
	// Whatever happens, get the detached filesystem back and thaw it, so the
	// fixture can unmount and detach it.
	t.Cleanup(func() {
		again := filepath.Join(filepath.Dir(fs.Mount), "again")
		os.Mkdir(again, 0o755)
		if out, err := exec.Command("mount", fs.Device, again).CombinedOutput(); err != nil {
			t.Errorf("remount %s: %v: %s", fs.Device, err, out)
			return
		}
		fsfreeze.Thaw(again)
		exec.Command("umount", again).Run()
		exec.Command("mount", fs.Device, fs.Mount).Run() // for the fixture's own cleanup
	})
	r := e.run("thaw", "--run-id", rep.RunID)
	var th report.ThawReport
	decodeOne(t, r.stdout, &th)
	if r.code != report.ExitFailed || len(th.Mounts) != 1 || th.Mounts[0].Thawed {
		t.Fatalf("thaw of a mount that is gone: exit %d, report %+v (want exit 1, thawed=false)\nstderr: %s", r.code, th, r.stderr)
	}
	if !strings.Contains(th.Mounts[0].Error, "device changed") || !strings.Contains(r.stderr, fs.Mount) {
		t.Fatalf("error must say why and name the mount: %q / %q", th.Mounts[0].Error, r.stderr)
	}
}
