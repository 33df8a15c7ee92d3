// Package fsfreeze freezes and thaws a mounted filesystem with the FIFREEZE and
// FITHAW ioctls (the same calls xfs_freeze/fsfreeze make), without shelling out.
package fsfreeze

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/quiesce/quiesce/contract"
	"golang.org/x/sys/unix"
)

// _IOWR('X', 119, int) and _IOWR('X', 120, int); identical on amd64 and arm64.
// golang.org/x/sys/unix does not export them.
const (
	FIFREEZE = 0xC0045877
	FITHAW   = 0xC0045878
)

// ErrDeviceChanged means the directory no longer lives on the device preflight
// validated (something was mounted or unmounted in between), so it is not
// frozen (Freeze) or not thawed (ThawDev) through that path.
var ErrDeviceChanged = errors.New("device changed since preflight")

// Freeze syncs and freezes the filesystem mounted at path. When wantDev is not
// zero, the device of the opened directory must equal it: the check and the
// ioctl use the same file descriptor, so a mount swapped in after preflight is
// never frozen by mistake. EBUSY (already frozen, by another run or by hand)
// is reported as contract.ErrBusy.
func Freeze(path string, wantDev uint64) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("freeze %s: open: %w", path, err)
	}
	defer unix.Close(fd)
	if wantDev != 0 {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fmt.Errorf("freeze %s: stat: %w", path, err)
		}
		if st.Dev != wantDev {
			return fmt.Errorf("freeze %s: %w (device %d:%d, expected %d:%d)", path, ErrDeviceChanged,
				unix.Major(st.Dev), unix.Minor(st.Dev), unix.Major(wantDev), unix.Minor(wantDev))
		}
	}
	// FIFREEZE syncs too, but flushing first while writers still run keeps the
	// time spent inside the freeze (with writers blocked) short.
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("freeze %s: syncfs: %w", path, err)
	}
	if err := ioctl(fd, FIFREEZE); err != nil {
		switch {
		case errors.Is(err, unix.EBUSY):
			return fmt.Errorf("freeze %s: already frozen: %w", path, contract.ErrBusy)
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTTY), errors.Is(err, unix.EINVAL):
			return fmt.Errorf("freeze %s: filesystem does not support freezing: %w", path, err)
		}
		return fmt.Errorf("freeze %s: %w", path, err)
	}
	return nil
}

// Thaw thaws the filesystem mounted at path. It is idempotent: EINVAL (not
// frozen) returns wasFrozen=false and no error.
func Thaw(path string) (wasFrozen bool, err error) { return ThawDev(path, 0) }

// ThawDev is Thaw that first checks, on the opened descriptor, that path is
// still the filesystem that was frozen (device wantDev, unless 0). If the
// mount was unmounted (umount -l) or covered since, FITHAW would hit another
// filesystem — "not frozen" from the parent, read as success, while the
// frozen one lives on detached, or worse a thaw of someone else's freeze — so
// it returns ErrDeviceChanged instead.
func ThawDev(path string, wantDev uint64) (wasFrozen bool, err error) {
	fd, err := Open(path, wantDev)
	if err != nil {
		return false, fmt.Errorf("thaw %s: %w", path, err)
	}
	defer unix.Close(fd)
	return ThawFD(fd, path)
}

// Open opens the mount's root directory read-only and checks it lives on
// wantDev (unless 0). Opening a directory on a frozen filesystem does not
// block (no write). A descriptor kept from before a freeze reaches that
// filesystem even after its mount point was unmounted lazily or covered.
func Open(path string, wantDev uint64) (fd int, err error) {
	fd, err = unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, fmt.Errorf("open: %w", err)
	}
	if wantDev != 0 {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("stat: %w", err)
		}
		if st.Dev != wantDev {
			unix.Close(fd)
			return -1, fmt.Errorf("%w (device %d:%d, frozen was %d:%d): unmounted or covered while frozen; that filesystem may still be frozen",
				ErrDeviceChanged, unix.Major(st.Dev), unix.Minor(st.Dev), unix.Major(wantDev), unix.Minor(wantDev))
		}
	}
	return fd, nil
}

// ThawFD thaws the filesystem of an open descriptor (see Open); path names it in errors.
func ThawFD(fd int, path string) (wasFrozen bool, err error) {
	if err := ioctl(fd, FITHAW); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return false, nil
		}
		return false, fmt.Errorf("thaw %s: %w", path, err)
	}
	return true, nil
}

// ioctl issues a request without argument, retrying on EINTR.
func ioctl(fd int, req uint) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return os.NewSyscallError("ioctl", errno)
		}
		return nil
	}
}

// rcuExpedited is the kernel's switch for expedited RCU grace periods.
var rcuExpedited = "/sys/kernel/rcu_expedited"

// RCUExpedited reports whether RCU grace periods are expedited
// (/sys/kernel/rcu_expedited is not 0).
//
// Why a freeze cares: freeze_super takes three percpu rw-semaphores, and each
// waits for a normal RCU grace period (tens of ms on a HZ=100..250 kernel) —
// most of a FIFREEZE's ~40 ms, spent with writers already blocked. Expedited
// grace periods take microseconds, so the freeze drops to a few ms. The
// setting is machine-wide, which is why hostagent switches it on only for
// the freeze calls, only when it was off (--expedite-rcu, default on), and records in the run's state that it must be put
// back, so the guardian and recovery restore it if the holder dies.
func RCUExpedited() (bool, error) {
	b, err := os.ReadFile(rcuExpedited)
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) != "0", nil
}

// SetRCUExpedited switches expedited RCU grace periods on or off.
func SetRCUExpedited(on bool) error {
	v := "0\n"
	if on {
		v = "1\n"
	}
	return os.WriteFile(rcuExpedited, []byte(v), 0)
}
