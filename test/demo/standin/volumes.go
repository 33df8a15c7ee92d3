package standin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/internal/mountinfo"
	"github.com/quiesce/quiesce/test/awslocal"
	"github.com/quiesce/quiesce/test/demo/pool"
)

// volumeRecord is a volume made real: its image and, while attached, its loop device.
type volumeRecord struct {
	Image   string
	Device  string // /dev/loopN while attached
	Created time.Time
	// CloneResult is how CreateVolume copied the snapshot (FICLONE or plain).
	pool.CloneResult
}

// VolumeImage is a created volume as the stand-in made it.
type VolumeImage struct {
	VolumeID string
	Image    string
	Device   string // "" when detached
	Created  time.Time
	pool.CloneResult
}

// Volumes returns the volumes CreateVolume made that still exist.
func (h *Hooks) Volumes() []VolumeImage {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []VolumeImage
	for id, r := range h.volumes {
		out = append(out, VolumeImage{VolumeID: id, Image: r.Image, Device: r.Device, Created: r.Created, CloneResult: r.CloneResult})
	}
	return out
}

func (h *Hooks) volume(volumeID string) *volumeRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.volumes[volumeID]
}

func badID(id string) bool { return id == "" || strings.ContainsAny(id, "/.") }

// OnCreateVolume makes the volume's image a FICLONE copy of the snapshot's,
// as EBS creates a volume from a snapshot; the snapshot stays untouched.
func (h *Hooks) OnCreateVolume(ctx context.Context, volumeID, snapshotID string) error {
	if badID(volumeID) || badID(snapshotID) {
		return fmt.Errorf("create volume %s from %q: bad id (a volume without a snapshot has no image here)", volumeID, snapshotID)
	}
	res, err := pool.Clone(h.SnapshotPath(snapshotID), h.ImagePath(volumeID))
	if err != nil {
		return fmt.Errorf("create volume %s from %s: %w", volumeID, snapshotID, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.volumes == nil {
		h.volumes = map[string]*volumeRecord{}
	}
	h.volumes[volumeID] = &volumeRecord{Image: h.ImagePath(volumeID), Created: time.Now(), CloneResult: res}
	return nil
}

// OnAttachVolume loop-attaches the volume's image on this machine: hostagent
// finds it by its backing file vol-<id>.img, as its volume discovery does on
// the stand-in's "instances".
func (h *Hooks) OnAttachVolume(ctx context.Context, instanceID, volumeID, device string) error {
	r := h.volume(volumeID)
	if r == nil {
		return fmt.Errorf("attach %s: the stand-in made no image for it", volumeID)
	}
	dev, err := pool.Attach(ctx, r.Image)
	if err != nil {
		return fmt.Errorf("attach %s: %w", volumeID, err)
	}
	h.mu.Lock()
	r.Device = dev
	h.mu.Unlock()
	return nil
}

// OnDetachVolume detaches the loop device. A mounted (or otherwise held)
// device is refused with IncorrectState, as a careful operator expects: the
// caller looks again later. Force detaches anyway (losetup -d then frees the
// device once its last user lets go, as a forced EBS detach pulls the disk).
func (h *Hooks) OnDetachVolume(ctx context.Context, instanceID, volumeID, device string, force bool) error {
	r := h.volume(volumeID)
	if r == nil || r.Device == "" {
		return nil // not a volume of ours (e.g. a seeded one): nothing real to detach
	}
	if !force {
		if why := deviceInUse(r.Device); why != "" {
			return &awslocal.APIError{Code: "IncorrectState", Message: fmt.Sprintf("Volume '%s' is in use on the instance (%s); unmount it first", volumeID, why)}
		}
	}
	if err := pool.Detach(ctx, r.Device); err != nil {
		return fmt.Errorf("detach %s (%s): %w", volumeID, r.Device, err)
	}
	h.mu.Lock()
	r.Device = ""
	h.mu.Unlock()
	return nil
}

// OnDeleteVolume removes the volume's image.
func (h *Hooks) OnDeleteVolume(ctx context.Context, volumeID string) error {
	r := h.volume(volumeID)
	if r == nil {
		return nil
	}
	if loops := pool.LoopsBackedBy(r.Image); len(loops) > 0 {
		return &awslocal.APIError{Code: "VolumeInUse", Message: fmt.Sprintf("Volume %s is still attached as %s", volumeID, strings.Join(loops, ","))}
	}
	if err := os.Remove(r.Image); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete volume %s: %w", volumeID, err)
	}
	h.mu.Lock()
	delete(h.volumes, volumeID)
	h.mu.Unlock()
	return nil
}

// deviceInUse says what holds a block device: a mount of it or a device
// stacked on it ("" when nothing does).
func deviceInUse(dev string) string {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return ""
	}
	if mounts, err := mountinfo.Read(); err == nil {
		for _, m := range mounts {
			if m.Dev == uint64(st.Rdev) {
				return dev + " is mounted at " + m.MountPoint
			}
		}
	}
	if holders, _ := os.ReadDir(filepath.Join("/sys/class/block", filepath.Base(dev), "holders")); len(holders) > 0 {
		return dev + " is held by " + holders[0].Name()
	}
	return ""
}
