package orchestrate

import (
	"fmt"
	"strings"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/tagvalue"
	"github.com/quiesce/quiesce/lambda/internal/targets"
)

// volumesOf maps the FreezeReport's mounts to the volumes to snapshot, in
// a stable order, and the per-volume tags (device and the mounts it backs).
func volumesOf(fr *contract.FreezeReport, t targets.Target) ([]string, map[string]map[string]string, error) {
	var vols []string
	mountsOf := map[string][]string{}
	hostDevice := map[string]string{}
	for _, m := range fr.Mounts {
		ids := m.VolumeIDs
		if len(ids) == 0 && len(m.EC2Devices) > 0 {
			// Xen instances: hostagent knows only EC2 device names (from
			// IMDS); the block device mappings say which volume each is.
			var err error
			if ids, err = volumesByDevice(m, t); err != nil {
				return nil, nil, err
			}
		}
		if len(ids) == 0 {
			return nil, nil, fmt.Errorf("mount %s (device %s) has no EBS volume ID: cannot snapshot it", m.Path, m.Device)
		}
		for _, v := range ids {
			hostDevice[v] = m.Device
			// With no block device mappings at all (EC2 did not say), trust
			// hostagent; otherwise a volume EC2 does not list is a mismatch.
			if _, attached := t.Volumes[v]; !attached && len(t.Volumes) > 0 {
				return nil, nil, fmt.Errorf("mount %s is on volume %s, which EC2 does not list as attached to %s", m.Path, v, t.InstanceID)
			}
			if _, seen := mountsOf[v]; !seen {
				vols = append(vols, v)
			}
			mountsOf[v] = append(mountsOf[v], m.Path)
		}
	}
	per := map[string]map[string]string{}
	for _, v := range vols {
		dev := t.Volumes[v]
		if dev == "" {
			dev = hostDevice[v]
		}
		per[v] = map[string]string{contract.TagDevice: dev, contract.TagMounts: tagvalue.Truncate(strings.Join(mountsOf[v], ","))}
	}
	return vols, per, nil
}

// volumesByDevice maps a mount's EC2 device names to the attached volumes.
// Names are compared without "/dev/" and with Xen's "xvd" read as "sd", as
// EC2 maps /dev/sdf to xvdf inside the guest.
func volumesByDevice(m contract.MountReport, t targets.Target) ([]string, error) {
	norm := func(dev string) string {
		dev = strings.TrimPrefix(dev, "/dev/")
		if rest, ok := strings.CutPrefix(dev, "xvd"); ok {
			dev = "sd" + rest
		}
		return dev
	}
	byDevice := map[string]string{}
	for vol, dev := range t.Volumes {
		byDevice[norm(dev)] = vol
	}
	var ids []string
	for _, dev := range m.EC2Devices {
		vol, ok := byDevice[norm(dev)]
		if !ok {
			return nil, fmt.Errorf("mount %s is on EC2 device %s, which no block device mapping of %s names", m.Path, dev, t.InstanceID)
		}
		ids = append(ids, vol)
	}
	return ids, nil
}
