// Package preflight decides whether a list of mount paths may be frozen. It
// changes nothing. Every refusal wraps contract.ErrUsage and names the value.
package preflight

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/internal/agenterr"
	"github.com/quiesce/quiesce/internal/mountinfo"
)

// FreezableFSTypes are the filesystems whose FIFREEZE is known to give a
// consistent, snapshot-safe image.
var FreezableFSTypes = map[string]bool{"xfs": true, "ext4": true, "btrfs": true}

// systemDirs are never frozen even if they were their own filesystem:
// freezing any of them stalls the machine (logging, boot, temp files, runtime state).
var systemDirs = []string{"/", "/tmp", "/var/log", "/boot", "/proc", "/sys", "/dev", "/run", "/var/tmp", "/usr", "/etc"}

// pseudoRoots are trees of kernel pseudo filesystems; nothing below them is data.
var pseudoRoots = []string{"/proc/", "/sys/", "/dev/", "/run/"}

// MountInfo is one line of /proc/self/mountinfo.
type MountInfo = mountinfo.Mount

// ParseMountinfo parses the proc(5) mountinfo format (see internal/mountinfo).
func ParseMountinfo(r io.Reader) ([]MountInfo, error) { return mountinfo.Parse(r) }

// Env is what preflight reads from the machine; tests replace it.
type Env struct {
	// Mounts returns the current mount table (default: /proc/self/mountinfo).
	Mounts func() ([]MountInfo, error)
	// Stat returns the device and whether path is a directory (default: stat(2)).
	Stat func(path string) (dev uint64, isDir bool, err error)
	// Protected are paths whose filesystems must never be frozen, with the
	// reason shown to the user, e.g. {"/run/quiesce": "the state directory"}.
	Protected map[string]string
	// SysRoot is where sysfs is mounted (/sys), read to find mounts stored on
	// other listed mounts (loop backing files, dm/md slaves); "" skips that check.
	SysRoot string
}

// DefaultEnv is the real machine, protecting the binary and the state dir too.
func DefaultEnv(stateDir string) Env {
	prot := map[string]string{"/": "the root filesystem", "/tmp": "/tmp", "/var/log": "/var/log", "/boot": "/boot"}
	if exe, err := os.Executable(); err == nil {
		prot[exe] = "the hostagent binary"
	}
	if stateDir != "" {
		// It may not exist yet: protect the filesystem it will be created on.
		p := filepath.Clean(stateDir)
		for p != "/" {
			if _, err := os.Stat(p); err == nil {
				break
			}
			p = filepath.Dir(p)
		}
		prot[p] = "the state directory " + stateDir
	}
	return Env{Mounts: ReadMountinfo, Stat: statDev, Protected: prot, SysRoot: "/sys"}
}

// ReadMountinfo reads /proc/self/mountinfo.
func ReadMountinfo() ([]MountInfo, error) { return mountinfo.Read() }

func statDev(path string) (uint64, bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, false, err
	}
	return st.Dev, st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}

// Mount is a validated mount, ready to freeze.
type Mount struct {
	Path   string
	FSType string
	Source string // device as the mount table names it, e.g. /dev/nvme1n1
	Dev    uint64 // st_dev, re-checked right before FIFREEZE
	MajMin uint64 // major:minor from the mount table (the block device for xfs/ext4)
}

// Inspect checks every path and returns the valid mounts (sorted by path, the
// stable freeze order) and every problem found, one error per problem.
func Inspect(paths []string, env Env) ([]Mount, []error) {
	var problems []error
	if len(paths) == 0 {
		return nil, []error{agenterr.Usagef("no --mount given (at least one mount point to freeze)")}
	}
	table, err := env.Mounts()
	if err != nil {
		return nil, []error{fmt.Errorf("read mount table: %w", err)}
	}
	protectedDev := map[uint64]string{}
	// Sorted so the message is deterministic when two protected paths share a device.
	var protPaths []string
	for p := range env.Protected {
		protPaths = append(protPaths, p)
	}
	sort.Strings(protPaths)
	for _, p := range protPaths {
		if dev, _, err := env.Stat(p); err == nil {
			if _, seen := protectedDev[dev]; !seen {
				protectedDev[dev] = env.Protected[p]
			}
		}
	}
	seenPath := map[string]bool{}
	seenDev := map[uint64]string{}
	var mounts []Mount
	for _, p := range paths {
		m, err := inspectOne(p, table, env, protectedDev)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if seenPath[p] {
			problems = append(problems, agenterr.Usagef("--mount %s given twice", q(p)))
			continue
		}
		seenPath[p] = true
		if other, ok := seenDev[m.Dev]; ok {
			problems = append(problems, agenterr.Usagef("--mount %s and %s are the same filesystem; give it once", q(other), q(p)))
			continue
		}
		seenDev[m.Dev] = p
		mounts = append(mounts, m)
	}
	sort.Slice(mounts, func(i, j int) bool { return mounts[i].Path < mounts[j].Path })
	problems = append(problems, backingProblems(mounts, env)...)
	return mounts, problems
}

// Validate is Inspect returning only the first problem.
func Validate(paths []string, env Env) ([]Mount, error) {
	mounts, problems := Inspect(paths, env)
	if len(problems) > 0 {
		return nil, problems[0]
	}
	return mounts, nil
}

func inspectOne(p string, table []MountInfo, env Env, protectedDev map[uint64]string) (Mount, error) {
	switch {
	case p == "":
		return Mount{}, agenterr.Usagef("--mount \"\": empty path")
	case strings.TrimSpace(p) != p:
		// Never trimmed: " /data" is a different path, and a wrapper that
		// adds whitespace has a bug worth seeing.
		return Mount{}, agenterr.Usagef("--mount %s: leading or trailing whitespace", q(p))
	case !filepath.IsAbs(p):
		return Mount{}, agenterr.Usagef("--mount %s: not an absolute path", q(p))
	case hasDotDot(p):
		return Mount{}, agenterr.Usagef("--mount %s: contains \"..\"", q(p))
	case filepath.Clean(p) != p:
		return Mount{}, agenterr.Usagef("--mount %s: not a clean path (use %s)", q(p), q(filepath.Clean(p)))
	}
	for _, d := range systemDirs {
		if p == d {
			return Mount{}, agenterr.Usagef("--mount %s: refusing to freeze a system directory", q(p))
		}
	}
	for _, r := range pseudoRoots {
		if strings.HasPrefix(p, r) {
			return Mount{}, agenterr.Usagef("--mount %s: refusing to freeze below %s", q(p), strings.TrimSuffix(r, "/"))
		}
	}
	dev, isDir, err := env.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Mount{}, agenterr.Usagef("--mount %s: does not exist", q(p))
		}
		return Mount{}, agenterr.Usagef("--mount %s: %v", q(p), err)
	}
	if !isDir {
		return Mount{}, agenterr.Usagef("--mount %s: not a directory", q(p))
	}
	// The last entry for a mount point is the one visible (later mounts shadow earlier ones).
	var mi *MountInfo
	for i := range table {
		if table[i].MountPoint == p {
			mi = &table[i]
		}
	}
	if mi == nil {
		return Mount{}, agenterr.Usagef("--mount %s: not a mount point", q(p))
	}
	if !FreezableFSTypes[mi.FSType] {
		return Mount{}, agenterr.Usagef("--mount %s: filesystem type %s cannot be frozen (want xfs, ext4 or btrfs)", q(p), mi.FSType)
	}
	if mi.Root != "/" && mi.FSType != "btrfs" {
		// A bind mount of a subdirectory: freezing it freezes the whole
		// filesystem, which is mounted (and possibly needed) elsewhere.
		return Mount{}, agenterr.Usagef("--mount %s: a bind mount of %s; give the filesystem's own mount point", q(p), mi.Root)
	}
	if what, ok := protectedDev[dev]; ok {
		return Mount{}, agenterr.Usagef("--mount %s: is the filesystem holding %s", q(p), what)
	}
	return Mount{Path: p, FSType: mi.FSType, Source: mi.Source, Dev: dev, MajMin: mi.Dev}, nil
}

// q names a value in a message, cut if huge.
func q(v string) string { return agenterr.Quote(v) }

func hasDotDot(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}
