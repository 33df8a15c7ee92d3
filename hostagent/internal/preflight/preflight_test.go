package preflight

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/test/fixture"
	"golang.org/x/sys/unix"
)

const fakeMountinfo = `27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
22 27 0:21 / /proc rw,relatime - proc proc rw
25 27 0:23 / /tmp rw - tmpfs tmpfs rw
60 27 259:1 / /var/lib/mysql rw,noatime - xfs /dev/nvme1n1 rw
61 27 259:2 / /var/lib/mysql-binlog rw - ext4 /dev/nvme2n1p1 rw
62 27 0:40 / /mnt/ram rw - tmpfs tmpfs rw
63 27 259:1 /sub /mnt/bind rw - xfs /dev/nvme1n1 rw
64 27 0:50 /@data /srv/btr rw - btrfs /dev/nvme3n1 rw
65 27 259:5 / /mnt/with\040space rw - xfs /dev/nvme5n1 rw
66 27 259:6 / /opt/agent rw - xfs /dev/nvme6n1 rw
67 27 259:1 / /var/lib/mysql-alias rw - xfs /dev/nvme1n1 rw
`

type fakeFS map[string]uint64 // path → device; every listed path is a directory

// env is an Env over this file system and the mount table mountinfo.
func (f fakeFS) env(mountinfo string) Env {
	return Env{
		Mounts: func() ([]MountInfo, error) { return ParseMountinfo(strings.NewReader(mountinfo)) },
		Stat:   f.stat,
	}
}

func (f fakeFS) stat(p string) (uint64, bool, error) {
	if p == "/etc/hosts" {
		return unix.Mkdev(254, 0), false, nil
	}
	dev, ok := f[p]
	if !ok {
		return 0, false, os.ErrNotExist
	}
	return dev, true, nil
}

func testEnv() Env {
	fs := fakeFS{
		"/": unix.Mkdev(254, 0), "/proc": unix.Mkdev(0, 21), "/tmp": unix.Mkdev(0, 23), "/var/log": unix.Mkdev(254, 0),
		"/var/lib/mysql": unix.Mkdev(259, 1), "/var/lib/mysql-binlog": unix.Mkdev(259, 2), "/mnt/ram": unix.Mkdev(0, 40),
		"/mnt/bind": unix.Mkdev(259, 1), "/srv/btr": unix.Mkdev(0, 50), "/mnt/with space": unix.Mkdev(259, 5),
		"/opt/agent": unix.Mkdev(259, 6), "/opt/agent/bin/hostagent": unix.Mkdev(259, 6),
		"/var/lib/mysql-alias": unix.Mkdev(259, 1), "/data/notmount": unix.Mkdev(254, 0),
	}
	env := fs.env(fakeMountinfo)
	env.Protected = map[string]string{"/": "the root filesystem", "/tmp": "/tmp",
		"/opt/agent/bin/hostagent": "the hostagent binary"}
	return env
}

func TestValidateAccepts(t *testing.T) {
	mounts, err := Validate([]string{"/var/lib/mysql-binlog", "/var/lib/mysql", "/srv/btr", "/mnt/with space"}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mounts {
		got = append(got, m.Path+":"+m.FSType+":"+m.Source)
	}
	want := "/mnt/with space:xfs:/dev/nvme5n1 /srv/btr:btrfs:/dev/nvme3n1 /var/lib/mysql:xfs:/dev/nvme1n1 /var/lib/mysql-binlog:ext4:/dev/nvme2n1p1"
	if strings.Join(got, " ") != want {
		t.Fatalf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
	if mounts[2].MajMin != unix.Mkdev(259, 1) || mounts[2].Dev != unix.Mkdev(259, 1) {
		t.Fatalf("device numbers not carried: %+v", mounts[2])
	}
}

func TestValidateRefuses(t *testing.T) {
	cases := []struct {
		name  string
		paths []string
		want  string // substring of the message
	}{
		{"none", nil, "no --mount"},
		{"empty", []string{""}, "empty path"},
		{"relative", []string{"var/lib/mysql"}, "not an absolute path"},
		{"dotdot", []string{"/var/lib/../lib/mysql"}, `contains ".."`},
		{"unclean", []string{"/var/lib/mysql/"}, "not a clean path"},
		{"double slash", []string{"/var//lib/mysql"}, "not a clean path"},
		{"root", []string{"/"}, "system directory"},
		{"tmp", []string{"/tmp"}, "system directory"},
		{"var log", []string{"/var/log"}, "system directory"},
		{"boot", []string{"/boot"}, "system directory"},
		{"proc", []string{"/proc"}, "system directory"},
		{"below sys", []string{"/sys/fs/cgroup"}, "below /sys"},
		{"missing", []string{"/nope"}, "does not exist"},
		{"file", []string{"/etc/hosts"}, "not a directory"},
		{"not a mount point", []string{"/data/notmount"}, "not a mount point"},
		{"tmpfs", []string{"/mnt/ram"}, "tmpfs cannot be frozen"},
		{"bind mount", []string{"/mnt/bind"}, "bind mount"},
		{"holds the binary", []string{"/opt/agent"}, "hostagent binary"},
		{"duplicate", []string{"/var/lib/mysql", "/var/lib/mysql"}, "given twice"},
		{"same filesystem", []string{"/var/lib/mysql", "/var/lib/mysql-alias"}, "same filesystem"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Validate(tc.paths, testEnv())
			fixture.RequireUsageError(t, err, tc.want)
		})
	}
}

func TestInspectReportsEveryProblem(t *testing.T) {
	mounts, problems := Inspect([]string{"/tmp", "/var/lib/mysql", "relative", "/mnt/ram"}, testEnv())
	if len(mounts) != 1 || mounts[0].Path != "/var/lib/mysql" {
		t.Fatalf("mounts = %+v", mounts)
	}
	if len(problems) != 3 {
		t.Fatalf("problems = %v, want 3", problems)
	}
}

func TestParseMountinfoUnescapes(t *testing.T) {
	mi, err := ParseMountinfo(strings.NewReader(fakeMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if mi[8].MountPoint != "/mnt/with space" || mi[7].Root != "/@data" {
		t.Fatalf("got %q / %q", mi[8].MountPoint, mi[7].Root)
	}
	if _, err := ParseMountinfo(strings.NewReader("garbage line\n")); err == nil {
		t.Fatal("garbage accepted")
	}
}

// The real machine: the root filesystem and /proc must be refused by the default env.
func TestDefaultEnvRefusesRealSystemMounts(t *testing.T) {
	for _, p := range []string{"/", "/proc"} {
		if _, err := Validate([]string{p}, DefaultEnv(t.TempDir())); !errors.Is(err, contract.ErrUsage) {
			t.Errorf("%s: got %v, want usage error", p, err)
		}
	}
}
