package preflight

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/internal/agenterr"
)

// maxStackDepth bounds the walk down a device stack (dm on md on loop on a
// file on another loop ...); real stacks are a few levels deep.
const maxStackDepth = 16

// storageHop is one filesystem a mount's storage goes through: a loop
// device's backing file lives on the filesystem with device Dev.
type storageHop struct {
	Dev uint64
	Via string // e.g. "/dev/loop4 is backed by /data/inner.img"
}

// backingProblems refuses mounts stored on another listed mount: a loop
// device whose backing file lives on it, directly or below device-mapper or
// md devices (their slaves in sysfs). Freezing the outer filesystem first
// would leave the inner one's FIFREEZE, and every write to it, waiting on a
// frozen filesystem — with both frozen, neither thaw order is safe. One
// error per inner mount, naming both.
func backingProblems(mounts []Mount, env Env) []error {
	if env.SysRoot == "" {
		return nil
	}
	onDev := map[uint64]string{}
	for _, m := range mounts {
		onDev[m.Dev] = m.Path
	}
	var problems []error
	for _, m := range mounts {
		for _, hop := range env.storageOf(m) {
			if outer, ok := onDev[hop.Dev]; ok && outer != m.Path {
				problems = append(problems, agenterr.Usagef(
					"--mount %s is stored on --mount %s (%s): freezing %s would stall %s's freeze and writes; freeze them in separate runs",
					q(m.Path), q(outer), hop.Via, q(outer), q(m.Path)))
				break
			}
		}
	}
	return problems
}

// storageOf lists the filesystems m's block device stack is stored on.
func (env Env) storageOf(m Mount) []storageHop {
	w := stackWalk{env: env, seen: map[uint64]bool{}}
	w.walk(m.MajMin, 0, "")
	// btrfs reports an anonymous device in mountinfo; its block device is the source.
	if dev, ok := env.sysDevOfName(filepath.Base(m.Source)); ok && strings.HasPrefix(m.Source, "/dev/") {
		w.walk(dev, 0, "")
	}
	return w.hops
}

type stackWalk struct {
	env  Env
	seen map[uint64]bool
	hops []storageHop
}

// walk follows dev down its stack; via describes the way there, for the message.
func (w *stackWalk) walk(dev uint64, depth int, via string) {
	if depth > maxStackDepth || w.seen[dev] {
		return
	}
	w.seen[dev] = true
	dir, err := filepath.EvalSymlinks(filepath.Join(w.env.SysRoot, "dev", "block", fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))))
	if err != nil {
		return // not a block device (tmpfs, an anonymous btrfs device)
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		dir = filepath.Dir(dir) // a partition's loop/slaves are its disk's
	}
	name := "/dev/" + filepath.Base(dir)
	if b, err := os.ReadFile(filepath.Join(dir, "loop", "backing_file")); err == nil {
		file := strings.TrimSpace(string(b))
		if fsDev, _, err := w.env.Stat(file); err == nil {
			hop := storageHop{Dev: fsDev, Via: via + name + " is backed by " + file}
			w.hops = append(w.hops, hop)
			w.walk(fsDev, depth+1, hop.Via+", stored on ") // that filesystem may itself be stacked
		}
	}
	slaves, _ := os.ReadDir(filepath.Join(dir, "slaves"))
	for _, s := range slaves {
		if sdev, ok := w.env.sysDevOfName(s.Name()); ok {
			w.walk(sdev, depth+1, via+name+" on ")
		}
	}
}

// sysDevOfName reads /sys/class/block/<name>/dev ("7:3").
func (env Env) sysDevOfName(name string) (uint64, bool) {
	b, err := os.ReadFile(filepath.Join(env.SysRoot, "class", "block", name, "dev"))
	if err != nil {
		return 0, false
	}
	var maj, min uint32
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &maj, &min); err != nil {
		return 0, false
	}
	return unix.Mkdev(maj, min), true
}
