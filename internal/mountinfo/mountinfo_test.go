package mountinfo

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const table = `22 1 252:0 / / rw,relatime - ext4 /dev/vda rw
100 22 7:0 / /var/tmp/demo/pool rw,relatime shared:1 - xfs /dev/loop0 rw
104 22 7:4 /sub /var/tmp/with\040space rw,relatime - xfs /dev/loop\0404 rw
`

func TestParse(t *testing.T) {
	mounts, err := Parse(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 3 {
		t.Fatalf("got %d mounts, want 3: %+v", len(mounts), mounts)
	}
	want := Mount{ID: 104, ParentID: 22, Dev: unix.Mkdev(7, 4), Root: "/sub",
		MountPoint: "/var/tmp/with space", FSType: "xfs", Source: "/dev/loop 4"}
	if mounts[2] != want {
		t.Errorf("mounts[2] = %+v, want %+v", mounts[2], want)
	}
	if mounts[1].FSType != "xfs" || mounts[1].MountPoint != "/var/tmp/demo/pool" {
		t.Errorf("optional fields misread: %+v", mounts[1])
	}
}

func TestParseRejectsBadLines(t *testing.T) {
	for _, line := range []string{
		"garbage line",
		"1 2 7:0 / /x rw",              // no separator
		"1 2 7:0 / - xfs",              // short
		"x 2 7:0 / /x rw - xfs /dev/a", // bad id
		"1 2 70 / /x rw - xfs /dev/a",  // bad device
	} {
		if _, err := Parse(strings.NewReader(line + "\n")); err == nil || !strings.Contains(err.Error(), line) {
			t.Errorf("Parse(%q) = %v, want an error naming the line", line, err)
		}
	}
}

func TestMountinfoEscapes(t *testing.T) {
	const mountinfo = `22 1 252:0 / / rw,relatime - ext4 /dev/vda rw
104 22 7:4 / /var/tmp/with\040space rw,relatime - xfs /dev/loop4 rw
`
	mounts, err := Parse(strings.NewReader(mountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if !Has(mounts, "/var/tmp/with space") {
		t.Fatal("escaped mount point not found")
	}
	if Has(mounts, "/var/tmp") {
		t.Fatal("non-mount reported as mount point")
	}
	if got := unescape(`a\134b\011c`); got != "a\\b\tc" {
		t.Fatalf("unescape = %q", got)
	}
	if got := unescape(`trailing\04`); got != `trailing\04` {
		t.Fatalf("short escape mangled: %q", got)
	}
}

func TestReadFindsRoot(t *testing.T) {
	mounts, err := Read()
	if err != nil {
		t.Skipf("no /proc/self/mountinfo here: %v", err)
	}
	if !Has(mounts, "/") || !IsMountPoint("/") {
		t.Fatalf("/ is not in the mount table: %+v", mounts)
	}
	if IsMountPoint(t.TempDir()) {
		t.Fatal("a fresh temp dir reported as a mount point")
	}
}
