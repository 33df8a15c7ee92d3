package standin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/quiesce/quiesce/test/awslocal"
	"github.com/quiesce/quiesce/test/demo/pool"
	"github.com/quiesce/quiesce/test/fixture"
)

// The volume hooks make a volume real: a copy of the snapshot image, a loop
// device backed by vol-<id>.img, a detach refused while mounted, the image
// removed on delete; the snapshot image is never written.
func TestVolumeHooksLifecycle(t *testing.T) {
	fixture.RequireRoot(t)
	fixture.RequireTools(t, "losetup", "mkfs.ext4", "mount", "umount")
	ctx := context.Background()
	dir := t.TempDir()
	h := &Hooks{PoolDir: dir}
	snap := h.SnapshotPath("snap-0123456789abcdef0")
	if err := pool.CreateSparse(snap, 32<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Run(ctx, "mkfs.ext4", "-q", "-F", snap); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(snap)
	const vol = "vol-0aaaabbbbccccdddd"
	if err := h.OnCreateVolume(ctx, vol, "snap-0123456789abcdef0"); err != nil {
		t.Fatal(err)
	}
	if err := h.OnCreateVolume(ctx, "vol-0aaaabbbbcccceeee", "snap-0000000000000dead"); err == nil {
		t.Fatal("a volume from a snapshot without an image was created")
	}
	if err := h.OnAttachVolume(ctx, "i-1", vol, "/dev/sdf"); err != nil {
		t.Fatal(err)
	}
	dev := h.volume(vol).Device
	t.Cleanup(func() { pool.Detach(context.Background(), dev) }) //nolint:errcheck // safety net
	if loops := pool.LoopsBackedBy(h.ImagePath(vol)); len(loops) != 1 || loops[0] != dev {
		t.Fatalf("loop devices backed by %s: %v, want [%s]", h.ImagePath(vol), loops, dev)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := pool.Mount(ctx, dev, mnt, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Unmount(context.Background(), mnt) }) //nolint:errcheck // safety net
	err := h.OnDetachVolume(ctx, "i-1", vol, "/dev/sdf", false)
	var ae *awslocal.APIError
	if !errors.As(err, &ae) || ae.Code != "IncorrectState" {
		t.Fatalf("detach of a mounted volume: %v, want IncorrectState", err)
	}
	if err := h.OnDeleteVolume(ctx, vol); !errors.As(err, &ae) || ae.Code != "VolumeInUse" {
		t.Fatalf("delete of an attached volume: %v, want VolumeInUse", err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "written"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := pool.Unmount(ctx, mnt); err != nil {
		t.Fatal(err)
	}
	if err := h.OnDetachVolume(ctx, "i-1", vol, "/dev/sdf", false); err != nil {
		t.Fatal(err)
	}
	if loops := pool.LoopsBackedBy(h.ImagePath(vol)); len(loops) != 0 {
		t.Fatalf("still attached: %v", loops)
	}
	if err := h.OnDeleteVolume(ctx, vol); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(h.ImagePath(vol)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("image not removed: %v", err)
	}
	after, _ := os.Stat(snap)
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("the snapshot image was written")
	}
}
