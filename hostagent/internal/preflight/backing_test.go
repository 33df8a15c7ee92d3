package preflight

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeSys builds a sysfs tree: /sys/dev/block/M:m symlinks to device dirs,
// /sys/class/block/<name>/dev, loop/backing_file and slaves/.
type fakeSys struct {
	t    *testing.T
	root string
}

func (s fakeSys) dev(name string, maj, min uint32) string {
	dir := filepath.Join(s.root, "devices", "virtual", "block", name)
	s.add(dir, name, maj, min)
	return dir
}

func (s fakeSys) partition(disk, name string, maj, min uint32) {
	dir := filepath.Join(s.root, "devices", "virtual", "block", disk, name)
	s.add(dir, name, maj, min)
	s.write(filepath.Join(dir, "partition"), "1")
}

func (s fakeSys) add(dir, name string, maj, min uint32) {
	mm := filepath.Join(s.root, "dev", "block", strings.Join([]string{itoa(maj), itoa(min)}, ":"))
	s.write(filepath.Join(dir, "dev"), itoa(maj)+":"+itoa(min)+"\n")
	os.MkdirAll(filepath.Dir(mm), 0o755)
	if err := os.Symlink(dir, mm); err != nil {
		s.t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(s.root, "class", "block"), 0o755)
	if err := os.Symlink(dir, filepath.Join(s.root, "class", "block", name)); err != nil {
		s.t.Fatal(err)
	}
}

func (s fakeSys) write(p, content string) {
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s fakeSys) loop(name string, min uint32, backing string) {
	s.write(filepath.Join(s.dev(name, 7, min), "loop", "backing_file"), backing+"\n")
}

func (s fakeSys) slaves(dir string, names ...string) {
	for _, n := range names {
		os.MkdirAll(filepath.Join(dir, "slaves"), 0o755)
		os.Symlink(filepath.Join(s.root, "class", "block", n), filepath.Join(dir, "slaves", n))
	}
}

func itoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

// The stacks: /outer is xfs on nvme1n1; /inner is xfs on loop4 backed by a
// file on /outer; /lvm is xfs on dm-0 over loop5p1 (a partition of loop5,
// backed by a file on /outer); /deep is on loop6 backed by a file on /inner;
// /md is on md0 over nvme2n1 and nvme3n1 (stored on nothing listed).
const stackMountinfo = `27 1 254:0 / / rw - ext4 /dev/vda rw
60 27 259:1 / /outer rw - xfs /dev/nvme1n1 rw
61 60 7:4 / /inner rw - xfs /dev/loop4 rw
62 27 253:0 / /lvm rw - xfs /dev/mapper/vg-lv rw
63 27 7:6 / /deep rw - xfs /dev/loop6 rw
64 27 9:0 / /md rw - ext4 /dev/md0 rw
65 27 0:55 / /btr rw - btrfs /dev/loop7 rw
`

func stackEnv(t *testing.T) Env {
	s := fakeSys{t: t, root: t.TempDir()}
	s.dev("nvme1n1", 259, 1)
	s.loop("loop4", 4, "/outer/images/inner.img")
	s.loop("loop5", 5, "/outer/images/lvm.img")
	s.partition("loop5", "loop5p1", 259, 9)
	s.slaves(s.dev("dm-0", 253, 0), "loop5p1")
	s.loop("loop6", 6, "/inner/deep.img")
	s.dev("nvme2n1", 259, 2)
	s.dev("nvme3n1", 259, 3)
	s.slaves(s.dev("md0", 9, 0), "nvme2n1", "nvme3n1")
	s.loop("loop7", 7, "/outer/btr.img")
	fs := fakeFS{
		"/": unix.Mkdev(254, 0), "/outer": unix.Mkdev(259, 1), "/inner": unix.Mkdev(7, 4), "/lvm": unix.Mkdev(253, 0),
		"/deep": unix.Mkdev(7, 6), "/md": unix.Mkdev(9, 0), "/btr": unix.Mkdev(0, 55),
		"/outer/images/inner.img": unix.Mkdev(259, 1), "/outer/images/lvm.img": unix.Mkdev(259, 1),
		"/inner/deep.img": unix.Mkdev(7, 4), "/outer/btr.img": unix.Mkdev(259, 1),
	}
	env := fs.env(stackMountinfo)
	env.SysRoot = s.root
	return env
}

func TestInspectRefusesMountsStoredOnEachOther(t *testing.T) {
	cases := []struct {
		paths []string
		want  []string // substrings of the one problem; nil = accepted
	}{
		{[]string{"/outer", "/inner"}, []string{`--mount "/inner" is stored on --mount "/outer"`, "/dev/loop4 is backed by /outer/images/inner.img"}},
		{[]string{"/inner", "/outer"}, []string{`--mount "/inner" is stored on --mount "/outer"`}},
		{[]string{"/lvm", "/outer"}, []string{`--mount "/lvm" is stored on --mount "/outer"`, "/dev/dm-0 on /dev/loop5 is backed by /outer/images/lvm.img"}},
		{[]string{"/deep", "/outer"}, []string{`--mount "/deep" is stored on --mount "/outer"`, "/inner/deep.img"}},
		{[]string{"/deep", "/inner"}, []string{`--mount "/deep" is stored on --mount "/inner"`}},
		{[]string{"/btr", "/outer"}, []string{`--mount "/btr" is stored on --mount "/outer"`, "/outer/btr.img"}},
		{[]string{"/outer", "/md"}, nil},
		{[]string{"/inner", "/lvm", "/md"}, nil},
		{[]string{"/inner"}, nil},
	}
	for _, tc := range cases {
		mounts, problems := Inspect(tc.paths, stackEnv(t))
		if tc.want == nil {
			if len(problems) != 0 || len(mounts) != len(tc.paths) {
				t.Errorf("%v: problems %v, mounts %d", tc.paths, problems, len(mounts))
			}
			continue
		}
		if len(problems) != 1 {
			t.Errorf("%v: problems %v, want exactly one", tc.paths, problems)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(problems[0].Error(), w) {
				t.Errorf("%v: %q does not contain %q", tc.paths, problems[0], w)
			}
		}
		if _, err := Validate(tc.paths, stackEnv(t)); err == nil {
			t.Errorf("%v: Validate accepted", tc.paths)
		}
	}
}
