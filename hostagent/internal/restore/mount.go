package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// MountOptions tune MountSet.
type MountOptions struct {
	// ReadOnly mounts read-only. Verify and clone mount read-write: crash
	// recovery (the filesystem's and InnoDB's) writes.
	ReadOnly bool
	// Journal, if set, records every mount point before the mount is made,
	// so a run killed with SIGKILL is unmounted by the next one.
	Journal *Journal
}

// Mount is one mounted volume of a set.
type Mount struct {
	VolumeID string `json:"volume_id"`
	Device   string `json:"device"`
	FSType   string `json:"fstype"`
	Path     string `json:"path"`
}

// MountedSet is a set of volumes mounted under one directory.
type MountedSet struct {
	Dir    string
	Mounts []Mount
	undo   Undo
}

// unmountTimeout bounds one set's unmounting (retries on EBUSY included).
const unmountTimeout = 60 * time.Second

// MountSet mounts every device under dir/<volume-id> (dir must exist and
// should be private to the caller: 0700). XFS is mounted with nouuid, since
// the source filesystem with the same UUID is usually still mounted. A device
// that is mounted anywhere already is refused (ErrInUse). On error, whatever
// was mounted is unmounted again.
func MountSet(ctx context.Context, devs []Device, dir string, o MountOptions) (*MountedSet, error) {
	set := &MountedSet{Dir: dir}
	err := set.mountEach(ctx, devs, func(_ int, d Device) (Mount, error) {
		point := filepath.Join(dir, d.VolumeID)
		return set.mountVolume(d, point, o, func() error {
			if err := os.Mkdir(point, 0o700); err != nil {
				return err
			}
			set.undo.Push("remove "+point, func(context.Context) error { return os.Remove(point) })
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return set, nil
}

// mountEach mounts every device in order with mountOne; on error whatever
// was mounted is unmounted again.
func (s *MountedSet) mountEach(ctx context.Context, devs []Device, mountOne func(i int, d Device) (Mount, error)) (err error) {
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close(ctx))
		}
	}()
	for i, d := range devs {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := mountOne(i, d)
		if err != nil {
			return err
		}
		s.Mounts = append(s.Mounts, m)
	}
	return nil
}

// mountVolume mounts d at point, refusing a device mounted anywhere already
// (ErrInUse). makePoint provides the mount point (and pushes its removal);
// the journal records it before the mount is made.
func (s *MountedSet) mountVolume(d Device, point string, o MountOptions, makePoint func() error) (Mount, error) {
	if where, err := mountedAt(d.Path); err != nil {
		return Mount{}, fmt.Errorf("volume %s: %w", d.VolumeID, err)
	} else if len(where) > 0 {
		return Mount{}, fmt.Errorf("volume %s: %s is already mounted at %s: %w", d.VolumeID, d.Path, strings.Join(where, ", "), ErrInUse)
	}
	if err := makePoint(); err != nil {
		return Mount{}, fmt.Errorf("volume %s: mount point: %w", d.VolumeID, err)
	}
	if o.Journal != nil {
		if err := o.Journal.AddMount(point); err != nil {
			return Mount{}, err
		}
	}
	var flags uintptr
	if o.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	data := ""
	if d.FSType == KindXFS {
		data = "nouuid"
	}
	if err := unix.Mount(d.Path, point, d.FSType, flags, data); err != nil {
		return Mount{}, fmt.Errorf("volume %s: mount %s (%s) at %s: %w", d.VolumeID, d.Path, d.FSType, point, err)
	}
	s.undo.Push("unmount "+point, func(ctx context.Context) error { return Unmount(ctx, point) })
	return Mount{VolumeID: d.VolumeID, Device: d.Path, FSType: d.FSType, Path: point}, nil
}

// Close unmounts every volume of the set (last first) and removes the mount
// points. Safe to call more than once.
func (s *MountedSet) Close(ctx context.Context) error {
	if s == nil {
		return nil
	}
	return s.undo.Run(ctx, unmountTimeout)
}

// Unmount unmounts path, retrying while it is busy (a just-killed server's
// files close asynchronously), and detaches it lazily as a last resort so
// the device is released once the last user goes. Not mounted is success.
func Unmount(ctx context.Context, path string) error {
	var err error
	for {
		err = unix.Unmount(path, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
			continue
		}
		break
	}
	if derr := unix.Unmount(path, unix.MNT_DETACH); derr == nil {
		return fmt.Errorf("unmount %s: %w (detached lazily)", path, err)
	}
	return fmt.Errorf("unmount %s: %w", path, err)
}
