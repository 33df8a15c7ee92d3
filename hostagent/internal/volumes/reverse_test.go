package volumes

import (
	"path/filepath"
	"reflect"
	"testing"
)

// The reverse of Discover, on the kernel's sysfs layout: disks with a volume
// id (NVMe serial, loop vol-*.img), their partitions and holders.
func TestAttachedDisks(t *testing.T) {
	f := newFakeSys(t)
	f.nvme("nvme1", "nvme1n1", "vol0abc123", "259:1")
	p := f.nvme("nvme2", "nvme2n1", "vol0def456", "259:2")
	f.blockDev(filepath.Join(p, "nvme2n1p1"), "nvme2n1p1", "259:3", true)
	f.nvme("nvme5", "nvme5n1", "AWS12345678", "259:9") // instance store: no volume id
	f.blockDev("devices/virtual/block/loop3", "loop3", "7:3", false)
	f.write("devices/virtual/block/loop3/loop/backing_file", "/tmp/demo/vol-0123abcd.img\n")
	f.blockDev("devices/virtual/block/loop4", "loop4", "7:4", false)
	f.write("devices/virtual/block/loop4/loop/backing_file", "/tmp/demo/other.img\n")
	f.slaves("dm-0", "nvme1n1")
	f.link("devices/pci0000:00/nvme/nvme1/nvme1n1/holders/dm-0", "class/block/dm-0")

	d := Discoverer{SysRoot: f.root}
	got, err := d.AttachedDisks()
	if err != nil {
		t.Fatal(err)
	}
	want := []AttachedDisk{{"loop3", "vol-0123abcd"}, {"nvme1n1", "vol-0abc123"}, {"nvme2n1", "vol-0def456"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AttachedDisks = %v, want %v", got, want)
	}
	if parts := d.Partitions("nvme2n1"); !reflect.DeepEqual(parts, []string{"nvme2n1p1"}) {
		t.Errorf("Partitions = %v", parts)
	}
	if h := d.Holders("nvme1n1"); !reflect.DeepEqual(h, []string{"dm-0"}) {
		t.Errorf("Holders = %v", h)
	}
	if h := d.Holders("nvme2n1"); len(h) != 0 {
		t.Errorf("Holders of a free disk = %v", h)
	}
}
