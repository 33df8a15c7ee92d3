// Package pool builds the demo's storage: a loop-mounted XFS "pool" with
// reflink=1 that holds the "EBS volume" images, so a snapshot is a FICLONE of
// the volume image (a point-in-time copy in milliseconds, as EBS fixes the
// point in time when CreateSnapshot returns). Every image, loop device and mount
// made here lives under the caller's work directory and is undone by Close, in
// reverse order, with bounded waits.
package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/internal/fsfreeze"
	"github.com/quiesce/quiesce/internal/mountinfo"
)

// cmdTimeout bounds every external command (mkfs, losetup, mount, umount).
const cmdTimeout = 60 * time.Second

// Run runs an external command with a bounded wait and returns its combined
// output in the error when it fails.
func Run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// CreateSparse creates (or truncates) a sparse file of the given size.
func CreateSparse(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create image %s: %w", path, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("size image %s: %w", path, err)
	}
	return f.Close()
}

// Attach attaches an image file to a free loop device.
func Attach(ctx context.Context, image string) (string, error) {
	return attach(ctx, image)
}

// AttachDirect attaches with --direct-io=on: the loop device's writes go
// straight to the backing file instead of through a second page cache, as a
// block device (EBS) would, so a snapshot copy has no dirty pages to flush.
func AttachDirect(ctx context.Context, image string) (string, error) {
	return attach(ctx, image, "--direct-io=on")
}

func attach(ctx context.Context, image string, opts ...string) (string, error) {
	out, err := Run(ctx, "losetup", append(append([]string{"--find", "--show"}, opts...), image)...)
	if err != nil {
		return "", fmt.Errorf("attach %s: %w", image, err)
	}
	dev := strings.TrimSpace(out)
	if !strings.HasPrefix(dev, "/dev/loop") {
		return "", fmt.Errorf("attach %s: losetup printed %q, not a loop device", image, dev)
	}
	return dev, nil
}

// Detach detaches a loop device.
func Detach(ctx context.Context, dev string) error {
	_, err := Run(ctx, "losetup", "-d", dev)
	return err
}

// Mount mounts dev at dir (created if missing) with optional -o options.
func Mount(ctx context.Context, dev, dir, options string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mount %s: %w", dir, err)
	}
	args := []string{}
	if options != "" {
		args = append(args, "-o", options)
	}
	args = append(args, dev, dir)
	_, err := Run(ctx, "mount", args...)
	return err
}

// Unmount thaws dir (a frozen filesystem cannot be unmounted) and unmounts it,
// retrying for a short while when it is busy (a process we stopped may still
// be closing files).
func Unmount(ctx context.Context, dir string) error {
	_, _ = fsfreeze.Thaw(dir)
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if _, err = Run(ctx, "umount", dir); err == nil {
			return nil
		}
		if !mountinfo.IsMountPoint(dir) {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
	return err
}

// MountsUnder lists mount points at or below dir, deepest first (the order to unmount them in).
func MountsUnder(dir string) []string {
	mounts, err := mountinfo.Read()
	if err != nil {
		return nil
	}
	return mountsUnder(mounts, dir)
}

func mountsUnder(mounts []mountinfo.Mount, dir string) []string {
	dir = filepath.Clean(dir)
	var out []string
	for _, m := range mounts {
		if mp := m.MountPoint; mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	// Deepest first: a child mount must go before its parent.
	sort.SliceStable(out, func(i, j int) bool { return strings.Count(out[i], "/") > strings.Count(out[j], "/") })
	return out
}

// LoopsBackedBy lists loop devices whose backing file is at or below dir.
func LoopsBackedBy(dir string) []string {
	dir = filepath.Clean(dir)
	entries, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var out []string
	for _, e := range entries {
		data, err := os.ReadFile(e)
		if err != nil {
			continue
		}
		bf := strings.TrimSuffix(strings.TrimSpace(string(data)), " (deleted)")
		if bf == dir || strings.HasPrefix(bf, dir+"/") {
			out = append(out, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(e))))
		}
	}
	return out
}

// CloneResult says how a snapshot copy was made.
type CloneResult struct {
	Reflink  bool          // FICLONE shared the extents
	Duration time.Duration // time spent copying
}

// Clone makes dst a point-in-time copy of src: FICLONE when the filesystem
// supports reflinks (milliseconds, whatever the size), else a plain copy
// whose duration the caller reports separately.
func Clone(src, dst string) (CloneResult, error) {
	start := time.Now()
	in, err := os.Open(src)
	if err != nil {
		return CloneResult{}, fmt.Errorf("clone %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return CloneResult{}, fmt.Errorf("clone to %s: %w", dst, err)
	}
	cerr := unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
	if cerr == nil {
		if err := out.Close(); err != nil {
			return CloneResult{}, fmt.Errorf("clone to %s: %w", dst, err)
		}
		return CloneResult{Reflink: true, Duration: time.Since(start)}, nil
	}
	if !errors.Is(cerr, unix.EOPNOTSUPP) && !errors.Is(cerr, unix.EXDEV) && !errors.Is(cerr, unix.EINVAL) && !errors.Is(cerr, unix.ENOTTY) {
		out.Close()
		os.Remove(dst)
		return CloneResult{}, fmt.Errorf("FICLONE %s → %s: %w", src, dst, cerr)
	}
	// No reflink here: copy sparsely-unaware but complete; the caller reports the time.
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return CloneResult{}, fmt.Errorf("copy %s → %s: %w", src, dst, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return CloneResult{}, fmt.Errorf("sync %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return CloneResult{}, fmt.Errorf("copy to %s: %w", dst, err)
	}
	return CloneResult{Reflink: false, Duration: time.Since(start)}, nil
}

// Cleanup is a LIFO stack of undo steps, each bounded in time. It is safe to
// call Run more than once and from a signal path; each step runs once.
type Cleanup struct {
	mu    sync.Mutex
	steps []step
}

type step struct {
	name string
	fn   func(context.Context) error
}

// Push adds an undo step.
func (c *Cleanup) Push(name string, fn func(context.Context) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.steps = append(c.steps, step{name, fn})
}

// Run undoes everything in reverse order, each step bounded by perStep, and
// returns every error (joined). ctx should be context.WithoutCancel of the
// run's context so an interrupt does not skip the cleanup.
func (c *Cleanup) Run(ctx context.Context, perStep time.Duration) error {
	var errs []error
	for {
		c.mu.Lock()
		if len(c.steps) == 0 {
			c.mu.Unlock()
			break
		}
		s := c.steps[len(c.steps)-1]
		c.steps = c.steps[:len(c.steps)-1]
		c.mu.Unlock()
		sctx, cancel := context.WithTimeout(ctx, perStep)
		if err := s.fn(sctx); err != nil {
			errs = append(errs, fmt.Errorf("cleanup %s: %w", s.name, err))
		}
		cancel()
	}
	return errors.Join(errs...)
}

// Pool is a loop-mounted XFS with reflink=1 under workdir/pool.
type Pool struct {
	Image string // workdir/pool.img
	Dev   string // its loop device
	Dir   string // its mount point
}

// NewPool creates, formats and mounts the pool; undo steps go on cl.
func NewPool(ctx context.Context, cl *Cleanup, workdir string, size int64) (*Pool, error) {
	p := &Pool{Image: filepath.Join(workdir, "pool.img"), Dir: filepath.Join(workdir, "pool")}
	if err := CreateSparse(p.Image, size); err != nil {
		return nil, err
	}
	if _, err := Run(ctx, "mkfs.xfs", "-q", "-f", "-m", "reflink=1", p.Image); err != nil {
		return nil, fmt.Errorf("format pool: %w", err)
	}
	dev, err := Attach(ctx, p.Image)
	if err != nil {
		return nil, err
	}
	p.Dev = dev
	cl.Push("detach "+dev, func(ctx context.Context) error { return Detach(ctx, dev) })
	if err := Mount(ctx, dev, p.Dir, ""); err != nil {
		return nil, fmt.Errorf("mount pool: %w", err)
	}
	cl.Push("unmount "+p.Dir, func(ctx context.Context) error { return Unmount(ctx, p.Dir) })
	// Extent size hints, inherited by the images created here: copy-on-write
	// after each snapshot then allocates 4 MiB at a time instead of 128 KiB,
	// so the volume image stays in few extents and FICLONE (whose time grows
	// with the extent count) stays in milliseconds over many snapshots.
	if _, err := Run(ctx, "xfs_io", "-c", "extsize 4m", "-c", "cowextsize 4m", p.Dir); err != nil {
		return nil, fmt.Errorf("pool extent hints: %w", err)
	}
	return p, nil
}

// Volume is an "EBS volume": an XFS image inside the pool, named vol-<hex>.img
// so hostagent maps its loop device to that volume id (contract 3).
type Volume struct {
	ID    string // vol-…
	Image string // pool/vol-….img
	Dev   string
	Dir   string // mount point (the one that gets frozen)
}

// NewVolume creates, formats, attaches and mounts a volume image in the pool.
func NewVolume(ctx context.Context, cl *Cleanup, p *Pool, id, mountDir string, size int64) (*Volume, error) {
	if !strings.HasPrefix(id, "vol-") {
		return nil, fmt.Errorf("volume id %q: must start with vol-", id)
	}
	v := &Volume{ID: id, Image: filepath.Join(p.Dir, id+".img"), Dir: mountDir}
	if err := CreateSparse(v.Image, size); err != nil {
		return nil, err
	}
	if _, err := Run(ctx, "mkfs.xfs", "-q", "-f", v.Image); err != nil {
		return nil, fmt.Errorf("format %s: %w", id, err)
	}
	dev, err := AttachDirect(ctx, v.Image)
	if err != nil {
		return nil, err
	}
	v.Dev = dev
	cl.Push("detach "+dev, func(ctx context.Context) error { return Detach(ctx, dev) })
	if err := Mount(ctx, dev, mountDir, ""); err != nil {
		return nil, fmt.Errorf("mount %s: %w", id, err)
	}
	// Thaw first: if anything is still frozen when we stop, unmounting would hang.
	cl.Push("unmount "+mountDir, func(ctx context.Context) error { return Unmount(ctx, mountDir) })
	return v, nil
}
