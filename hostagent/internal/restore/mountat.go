package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrMountPoint: a mount point that clone must not mount on (something is
// mounted there, it is not an empty directory, or it is not absolute).
var ErrMountPoint = errors.New("unusable mount point")

// CheckMountPoint refuses a mount point that is relative, has something
// mounted on it, or exists and is not an empty directory: mounting over
// files would hide them, mounting over a mount would stack on it. A path
// that does not exist is fine when its parent exists (MountAt creates it).
func CheckMountPoint(path string) error {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path || path == "/" {
		return fmt.Errorf("mount point %q: want a clean absolute path other than /: %w", path, ErrMountPoint)
	}
	mounts, err := readMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if m.MountPoint == path {
			return fmt.Errorf("mount point %s: %s is mounted there already: %w", path, m.Source, ErrMountPoint)
		}
	}
	st, err := os.Lstat(path)
	if os.IsNotExist(err) {
		if pst, perr := os.Stat(filepath.Dir(path)); perr != nil || !pst.IsDir() {
			return fmt.Errorf("mount point %s: its parent is not a directory: %w", path, ErrMountPoint)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("mount point %s: %w", path, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("mount point %s: not a directory: %w", path, ErrMountPoint)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", path, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && err != io.EOF {
		return fmt.Errorf("mount point %s: %w", path, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("mount point %s is not empty (it holds %s): %w", path, names[0], ErrMountPoint)
	}
	return nil
}

// MountAt mounts devs[i] at points[i] (the source's own mount points, so
// the absolute paths in the restored configuration and index files hold).
// Every point is checked (CheckMountPoint) before anything is mounted; a
// point that does not exist is created, and removed again by Close. On error
// whatever was mounted is unmounted again. Mounts are journaled as with
// MountSet, so a killed run's mounts are undone by the next run.
func MountAt(ctx context.Context, devs []Device, points []string, o MountOptions) (*MountedSet, error) {
	if len(devs) != len(points) {
		return nil, fmt.Errorf("%d volumes and %d mount points: %w", len(devs), len(points), ErrMountPoint)
	}
	seen := map[string]bool{}
	for _, p := range points {
		if seen[p] {
			return nil, fmt.Errorf("mount point %s given twice: %w", p, ErrMountPoint)
		}
		seen[p] = true
		for q := range seen {
			if q != p && (strings.HasPrefix(p, q+"/") || strings.HasPrefix(q, p+"/")) {
				return nil, fmt.Errorf("mount points %s and %s nest: %w", p, q, ErrMountPoint)
			}
		}
		if err := CheckMountPoint(p); err != nil {
			return nil, err
		}
	}
	set := &MountedSet{}
	err := set.mountEach(ctx, devs, func(i int, d Device) (Mount, error) {
		point := points[i]
		return set.mountVolume(d, point, o, func() error {
			if err := os.Mkdir(point, 0o755); err == nil {
				set.undo.Push("remove "+point, func(context.Context) error { return os.Remove(point) })
			} else if !os.IsExist(err) {
				return err
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return set, nil
}

// Keep hands the mounts over to the caller for good (a clone that now
// runs): Close does nothing afterwards.
func (s *MountedSet) Keep() { s.undo = Undo{} }
