package restore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/quiesce/quiesce/hostagent/internal/volumes"
)

// Typed errors callers branch on (hostagent maps them to exit codes).
var (
	// ErrNotAttached: no block device on this instance carries the volume id.
	ErrNotAttached = errors.New("volume not attached")
	// ErrUnsupported: the volume holds something this package does not
	// restore (an LVM physical volume, an md member, no filesystem at all).
	ErrUnsupported = errors.New("unsupported volume content")
	// ErrInUse: the device is already mounted or held by a dm/md device.
	ErrInUse = errors.New("device in use")
)

var volumeIDPattern = regexp.MustCompile(`^vol-[0-9a-f]{8,32}$`)

// ValidVolumeID reports whether id looks like an EBS volume id (vol-<hex>).
func ValidVolumeID(id string) bool { return volumeIDPattern.MatchString(id) }

// Device is the block device that carries one volume of the set.
type Device struct {
	VolumeID string
	// Path is what to mount: /dev/<disk>, or /dev/<partition> when the disk
	// is partitioned and exactly one partition holds a filesystem.
	Path   string
	Disk   string // kernel name of the whole disk (nvme1n1, loop3)
	FSType string // xfs, ext4 or btrfs
}

// FindOptions tune FindDevices.
type FindOptions struct {
	// Sys is the sysfs reader (default: /sys).
	Sys volumes.Discoverer
	// DevRoot is where device nodes live (default /dev).
	DevRoot string
	// Wait is how long to wait for a volume that is not there yet (an EBS
	// attachment shows up seconds after AttachVolume returns). 0: look once.
	Wait time.Duration
}

// FindDevices finds the block device of every volume id, in the order given.
// Nothing is changed on the machine, so there is nothing to undo.
func FindDevices(ctx context.Context, ids []string, o FindOptions) ([]Device, error) {
	if o.DevRoot == "" {
		o.DevRoot = "/dev"
	}
	deadline := time.Now().Add(o.Wait)
	for {
		disks, err := o.Sys.AttachedDisks()
		if err != nil {
			return nil, fmt.Errorf("list block devices: %w", err)
		}
		byID := map[string]string{}
		for _, d := range disks {
			byID[d.VolumeID] = d.Name
		}
		missing := ""
		for _, id := range ids {
			if _, ok := byID[id]; !ok {
				missing = id
				break
			}
		}
		if missing == "" {
			return describeDevices(ids, byID, o)
		}
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("volume %s: no attached block device carries it (NVMe serial or loop vol-*.img): %w", missing, ErrNotAttached)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for volume %s: %w", missing, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func describeDevices(ids []string, byID map[string]string, o FindOptions) ([]Device, error) {
	out := make([]Device, 0, len(ids))
	for _, id := range ids {
		d, err := describeDevice(id, byID[id], o)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// describeDevice picks what to mount on a disk: the disk itself when it holds
// a filesystem, else its one partition that does.
func describeDevice(id, disk string, o FindOptions) (Device, error) {
	candidates := append([]string{disk}, o.Sys.Partitions(disk)...)
	var found []Device
	for _, name := range candidates {
		if h := o.Sys.Holders(name); len(h) > 0 {
			return Device{}, fmt.Errorf("volume %s: %s is held by %s (an active LVM/md device?): %w", id, name, strings.Join(h, ","), ErrInUse)
		}
		path := filepath.Join(o.DevRoot, name)
		kind, err := ProbeContent(path)
		if err != nil {
			return Device{}, fmt.Errorf("volume %s: %w", id, err)
		}
		switch kind {
		case KindLVM, KindMD:
			return Device{}, fmt.Errorf("volume %s: %s is an %s (part of an LVM/md set); restoring those is not supported: %w", id, path, kind, ErrUnsupported)
		case KindXFS, KindExt4, KindBtrfs:
			found = append(found, Device{VolumeID: id, Path: path, Disk: disk, FSType: kind})
		}
		if name == disk && len(found) == 1 {
			return found[0], nil // a whole-disk filesystem: partitions are not looked at
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return Device{}, fmt.Errorf("volume %s (%s): no xfs, ext4 or btrfs filesystem found: %w", id, disk, ErrUnsupported)
	}
	return Device{}, fmt.Errorf("volume %s (%s): %d partitions hold filesystems; want one: %w", id, disk, len(found), ErrUnsupported)
}
