package fsfreeze_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/internal/fsfreeze"
	"github.com/quiesce/quiesce/test/fixture"
)

func TestFreezeThawLoop(t *testing.T) {
	for _, fstype := range []string{"xfs", "ext4", "btrfs"} {
		t.Run(fstype, func(t *testing.T) {
			fixture.RequireLoopFS(t, fstype)
			fs, err := fixture.NewLoopFS(t.TempDir(), fstype, 64)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := fs.Close(); err != nil {
					t.Error(err)
				}
			})
			var st unix.Stat_t
			if err := unix.Stat(fs.Mount, &st); err != nil {
				t.Fatal(err)
			}
			// A stale device must refuse to freeze.
			if err := fsfreeze.Freeze(fs.Mount, st.Dev+1); !errors.Is(err, fsfreeze.ErrDeviceChanged) {
				t.Fatalf("freeze with wrong device: got %v, want ErrDeviceChanged", err)
			}
			if fs.IsFrozen(200 * time.Millisecond) {
				t.Fatal("frozen after a refused freeze")
			}
			if err := fsfreeze.Freeze(fs.Mount, st.Dev); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { fs.Thaw() })
			if err := fsfreeze.Freeze(fs.Mount, st.Dev); !errors.Is(err, contract.ErrBusy) {
				t.Fatalf("second freeze: got %v, want ErrBusy", err)
			}
			probe := filepath.Join(fs.Mount, "during-freeze")
			done := make(chan bool, 1)
			go func() { done <- fixture.WriteCompletes(probe, 5*time.Second) }()
			select {
			case <-done:
				t.Fatal("write completed on a frozen filesystem")
			case <-time.After(150 * time.Millisecond):
			}
			// A stale device must refuse to thaw: FITHAW would reach another filesystem.
			if _, err := fsfreeze.ThawDev(fs.Mount, st.Dev+1); !errors.Is(err, fsfreeze.ErrDeviceChanged) {
				t.Fatalf("thaw with wrong device: got %v, want ErrDeviceChanged", err)
			}
			select {
			case <-done:
				t.Fatal("a thaw with the wrong device thawed")
			case <-time.After(100 * time.Millisecond):
			}
			was, err := fsfreeze.ThawDev(fs.Mount, st.Dev)
			if err != nil || !was {
				t.Fatalf("thaw: was=%v err=%v", was, err)
			}
			if !<-done {
				t.Fatal("write did not complete after thaw")
			}
			was, err = fsfreeze.Thaw(fs.Mount)
			if err != nil || was {
				t.Fatalf("second thaw must be a no-op: was=%v err=%v", was, err)
			}
		})
	}
}
