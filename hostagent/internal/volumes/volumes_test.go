package volumes

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeSys builds a sysfs-shaped tree: real device directories under devices/,
// symlinks from class/block/<name> and dev/block/<maj:min>, as the kernel lays them out.
type fakeSys struct {
	t    *testing.T
	root string
}

func newFakeSys(t *testing.T) *fakeSys { return &fakeSys{t: t, root: t.TempDir()} }

func (f *fakeSys) write(rel, content string) {
	p := filepath.Join(f.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeSys) link(rel, target string) {
	p := filepath.Join(f.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(f.root, target), p); err != nil {
		f.t.Fatal(err)
	}
}

// blockDev registers a block device directory devPath (relative to root) as name with maj:min.
func (f *fakeSys) blockDev(devPath, name, majMin string, partition bool) {
	if err := os.MkdirAll(filepath.Join(f.root, devPath), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if partition {
		f.write(filepath.Join(devPath, "partition"), "1\n")
	}
	f.link(filepath.Join("class", "block", name), devPath)
	if majMin != "" {
		f.link(filepath.Join("dev", "block", majMin), devPath)
	}
}

// nvme adds controller ctrl with serial and namespace disk.
func (f *fakeSys) nvme(ctrl, disk, serial, majMin string) string {
	ctrlPath := filepath.Join("devices", "pci0000:00", "nvme", ctrl)
	f.write(filepath.Join(ctrlPath, "serial"), serial+"  \n")
	diskPath := filepath.Join(ctrlPath, disk)
	f.blockDev(diskPath, disk, majMin, false)
	f.link(filepath.Join(diskPath, "device"), ctrlPath)
	return diskPath
}

func (f *fakeSys) slaves(name string, slaves ...string) {
	dir := filepath.Join("devices", "virtual", "block", name)
	f.blockDev(dir, name, "", false)
	for _, s := range slaves {
		f.link(filepath.Join(dir, "slaves", s), filepath.Join("class", "block", s))
	}
}

func mm(maj, min uint32) uint64 { return unix.Mkdev(maj, min) }

func TestDiscoverSysfs(t *testing.T) {
	f := newFakeSys(t)
	f.nvme("nvme1", "nvme1n1", "vol0abc123", "259:1")
	p := f.nvme("nvme2", "nvme2n1", "vol0def456", "259:2")
	f.blockDev(filepath.Join(p, "nvme2n1p1"), "nvme2n1p1", "259:3", true)
	f.nvme("nvme3", "nvme3n1", "vol0333", "259:4")
	p = f.nvme("nvme4", "nvme4n1", "vol0444", "259:5")
	f.blockDev(filepath.Join(p, "nvme4n1p1"), "nvme4n1p1", "", true)
	f.slaves("md0", "nvme3n1", "nvme4n1p1")
	f.slaves("dm-0", "md0")
	f.write("devices/virtual/block/dm-0/dev", "253:0\n")
	f.link("dev/block/253:0", "devices/virtual/block/dm-0")
	f.nvme("nvme5", "nvme5n1", "AWS12345678", "259:9") // instance store: not an EBS volume
	f.blockDev("devices/virtual/block/loop3", "loop3", "7:3", false)
	f.write("devices/virtual/block/loop3/loop/backing_file", "/tmp/demo/vol-0123abcd.img\n")
	f.blockDev("devices/virtual/block/loop4", "loop4", "7:4", false)
	f.write("devices/virtual/block/loop4/loop/backing_file", "/tmp/demo/other.img (deleted)\n")

	d := Discoverer{SysRoot: f.root}
	cases := []struct {
		name    string
		majMin  uint64
		source  string
		volumes []string
		disks   []string
	}{
		{"nvme disk", mm(259, 1), "/dev/nvme1n1", []string{"vol-0abc123"}, []string{"nvme1n1"}},
		{"nvme partition", mm(259, 3), "/dev/nvme2n1p1", []string{"vol-0def456"}, []string{"nvme2n1"}},
		{"lvm on md on nvme", mm(253, 0), "/dev/mapper/vg-data", []string{"vol-0333", "vol-0444"}, []string{"nvme3n1", "nvme4n1"}},
		{"btrfs anonymous dev falls back to source", mm(0, 50), "/dev/nvme1n1", []string{"vol-0abc123"}, []string{"nvme1n1"}},
		{"instance store", mm(259, 9), "/dev/nvme5n1", nil, []string{"nvme5n1"}},
		{"loop stand-in volume", mm(7, 3), "/dev/loop3", []string{"vol-0123abcd"}, []string{"loop3"}},
		{"loop with other image", mm(7, 4), "/dev/loop4", nil, []string{"loop4"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := d.Discover(context.Background(), tc.majMin, tc.source)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.VolumeIDs, tc.volumes) || !reflect.DeepEqual(res.Disks, tc.disks) {
				t.Fatalf("got volumes %v disks %v, want %v %v", res.VolumeIDs, res.Disks, tc.volumes, tc.disks)
			}
		})
	}
	if _, err := d.Discover(context.Background(), mm(8, 99), "tmpfs"); err == nil {
		t.Fatal("unknown device accepted")
	}
}

// fakeIMDS serves IMDSv2: a PUT for the token, then GETs that must carry it.
func fakeIMDS(t *testing.T, mapping map[string]string, delay time.Duration) (*httptest.Server, *atomic.Int32) {
	var puts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		if r.URL.Path == "/latest/api/token" {
			if r.Method != http.MethodPut || r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
				http.Error(w, "bad token request", http.StatusBadRequest)
				return
			}
			puts.Add(1)
			w.Write([]byte("tok-123"))
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token") != "tok-123" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		const prefix = "/latest/meta-data/block-device-mapping/"
		switch {
		case r.URL.Path == prefix:
			var keys []string
			for k := range mapping {
				keys = append(keys, k)
			}
			w.Write([]byte(strings.Join(keys, "\n")))
		case strings.HasPrefix(r.URL.Path, prefix):
			v, ok := mapping[strings.TrimPrefix(r.URL.Path, prefix)]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Write([]byte(v))
		case r.URL.Path == "/latest/meta-data/instance-id":
			w.Write([]byte("i-0123456789abcdef0"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &puts
}

func TestDiscoverXenViaIMDS(t *testing.T) {
	f := newFakeSys(t)
	f.blockDev("devices/vbd-51792/block/xvdf", "xvdf", "202:80", false)
	f.blockDev("devices/vbd-51712/block/xvda", "xvda", "202:0", false)
	f.blockDev("devices/vbd-51712/block/xvda/xvda1", "xvda1", "202:1", true)
	srv, puts := fakeIMDS(t, map[string]string{"ami": "sda1", "root": "/dev/sda1", "ebs1": "sdf", "ephemeral0": "sdb"}, 0)
	imds := &IMDS{BaseURL: srv.URL}
	d := Discoverer{SysRoot: f.root, IMDS: imds}

	res, err := d.Discover(context.Background(), mm(202, 80), "/dev/xvdf")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.EC2Devices, []string{"/dev/sdf"}) {
		t.Fatalf("xvdf → %v, want [/dev/sdf]", res.EC2Devices)
	}
	res, err = d.Discover(context.Background(), mm(202, 1), "/dev/xvda1")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.EC2Devices) != 1 || canonicalXen(res.EC2Devices[0]) != "xvda" {
		t.Fatalf("xvda1 → %v, want the root device", res.EC2Devices)
	}
	if puts.Load() != 1 {
		t.Fatalf("token fetched %d times, want once (reused)", puts.Load())
	}
	id, err := imds.Get(context.Background(), "/latest/meta-data/instance-id")
	if err != nil || id != "i-0123456789abcdef0" {
		t.Fatalf("instance id %q, %v", id, err)
	}
}

func TestIMDSTimeoutIsShort(t *testing.T) {
	srv, _ := fakeIMDS(t, nil, 600*time.Millisecond)
	imds := &IMDS{BaseURL: srv.URL, Timeout: 100 * time.Millisecond}
	start := time.Now()
	_, err := imds.BlockDeviceMapping(context.Background())
	if !errors.Is(err, ErrIMDS) {
		t.Fatalf("got %v, want ErrIMDS", err)
	}
	if el := time.Since(start); el > 500*time.Millisecond {
		t.Fatalf("slow IMDS held us %v", el)
	}
}

func TestOnEC2(t *testing.T) {
	f := newFakeSys(t)
	if on, _ := (Discoverer{SysRoot: f.root}).OnEC2(); on {
		t.Fatal("empty sysfs looks like EC2")
	}
	f.write("devices/virtual/dmi/id/board_asset_tag", "i-0abc\n")
	if on, id := (Discoverer{SysRoot: f.root}).OnEC2(); !on || id != "i-0abc" {
		t.Fatalf("nitro: on=%v id=%q", on, id)
	}
	g := newFakeSys(t)
	g.write("hypervisor/uuid", "ec2e1916-9099-7caf-fd21-012345abcdef\n")
	if on, _ := (Discoverer{SysRoot: g.root}).OnEC2(); !on {
		t.Fatal("xen EC2 not detected")
	}
}
