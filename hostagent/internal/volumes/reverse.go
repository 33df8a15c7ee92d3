package volumes

import (
	"os"
	"sort"
	"strings"
)

// AttachedDisk is a whole disk (not a partition) that carries an EBS volume id.
type AttachedDisk struct {
	Name     string // kernel name, e.g. nvme1n1 or loop3
	VolumeID string
}

// AttachedDisks lists the disks whose volume id is known from sysfs — the
// reverse of Discover: NVMe serials and loop devices backed by vol-<hex>.img.
// A restore looks its volumes up here by id. Xen disks carry no id and are
// not listed. Sorted by name.
func (d Discoverer) AttachedDisks() ([]AttachedDisk, error) {
	entries, err := os.ReadDir(d.sys("class", "block"))
	if err != nil {
		return nil, err
	}
	var out []AttachedDisk
	for _, e := range entries {
		name := e.Name()
		if _, err := os.Stat(d.sys("class", "block", name, "partition")); err == nil {
			continue
		}
		var id string
		switch {
		case strings.HasPrefix(name, "nvme"):
			id = d.nvmeVolume(name)
		case strings.HasPrefix(name, "loop"):
			id = d.loopVolume(name)
		}
		if id != "" {
			out = append(out, AttachedDisk{Name: name, VolumeID: id})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Partitions lists the partitions of a disk (their kernel names), from sysfs.
func (d Discoverer) Partitions(disk string) []string {
	entries, err := os.ReadDir(d.sys("class", "block", disk))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), disk) {
			continue
		}
		if _, err := os.Stat(d.sys("class", "block", disk, e.Name(), "partition")); err == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

// Holders lists what sits on top of a disk or partition (dm/md devices).
func (d Discoverer) Holders(name string) []string {
	entries, err := os.ReadDir(d.sys("class", "block", name, "holders"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
