// Package mountinfo reads the kernel's mount table, /proc/self/mountinfo
// (proc(5)). hostagent's preflight validates mounts with it; the test tree
// uses it to find and undo the mounts it made.
package mountinfo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount is one line of /proc/self/mountinfo.
type Mount struct {
	ID, ParentID int
	Dev          uint64 // major:minor of the filesystem
	Root         string
	MountPoint   string
	FSType       string
	Source       string
}

// Parse parses the proc(5) mountinfo format, unescaping \040-style octal.
// A line it cannot read is an error naming the line.
func Parse(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		m, err := parseLine(line)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// parseLine reads "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - FSTYPE SOURCE SUPEROPTIONS".
func parseLine(line string) (Mount, error) {
	pre, post, ok := strings.Cut(line, " - ")
	if !ok {
		return Mount{}, fmt.Errorf("mountinfo: no separator in %q", line)
	}
	f := strings.Fields(pre)
	g := strings.Fields(post)
	if len(f) < 5 || len(g) < 2 {
		return Mount{}, fmt.Errorf("mountinfo: short line %q", line)
	}
	id, err1 := strconv.Atoi(f[0])
	parent, err2 := strconv.Atoi(f[1])
	maj, min, ok := strings.Cut(f[2], ":")
	ma, err3 := strconv.ParseUint(maj, 10, 32)
	mi, err4 := strconv.ParseUint(min, 10, 32)
	if err := errors.Join(err1, err2, err3, err4); err != nil || !ok {
		return Mount{}, fmt.Errorf("mountinfo: bad line %q", line)
	}
	return Mount{
		ID: id, ParentID: parent,
		Dev:        unix.Mkdev(uint32(ma), uint32(mi)),
		Root:       unescape(f[3]),
		MountPoint: unescape(f[4]),
		FSType:     g[0],
		Source:     unescape(g[1]),
	}, nil
}

// unescape undoes the octal escapes the kernel writes for space, tab,
// newline and backslash (\040, \011, \012, \134). A short or non-octal
// escape is kept as it is.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Read reads the calling process's mount table.
func Read() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// Has reports whether dir is the mount point of one of mounts.
func Has(mounts []Mount, dir string) bool {
	for _, m := range mounts {
		if m.MountPoint == dir {
			return true
		}
	}
	return false
}

// IsMountPoint reports whether dir is a mount point now (false if the
// mount table cannot be read).
func IsMountPoint(dir string) bool {
	mounts, err := Read()
	return err == nil && Has(mounts, dir)
}
