// Package volumes maps a mounted filesystem to the EBS volumes behind it, from
// sysfs: NVMe serials (vol0abc → vol-0abc), through partitions and
// dm/md/LVM slaves; Xen xvd/sd disks via the IMDSv2 block-device-mapping
// (which names EC2 devices, not volume ids); loop devices whose backing file is
// named vol-<hex>.img (the local stand-in's "EBS volumes").
package volumes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

var (
	nvmeSerial  = regexp.MustCompile(`^vol(0?[0-9a-f]+)$`)
	loopBacking = regexp.MustCompile(`^(vol-[0-9a-f]+)\.img$`)
	trailingNum = regexp.MustCompile(`[0-9]+$`)
)

// Discoverer finds volumes. The zero value reads /sys and never asks IMDS.
type Discoverer struct {
	SysRoot string // default "/sys"
	IMDS    *IMDS  // nil: Xen disks are reported without an EC2 device name
}

// Result describes the storage behind one mount.
type Result struct {
	VolumeIDs  []string // EBS volume ids (sorted, unique)
	EC2Devices []string // EC2 device names (e.g. /dev/sdf) of Xen disks, for DescribeInstances mapping
	Disks      []string // kernel names of the leaf disks, e.g. nvme1n1, xvdf, loop3
}

func (d Discoverer) sys(parts ...string) string {
	root := d.SysRoot
	if root == "" {
		root = "/sys"
	}
	return filepath.Join(append([]string{root}, parts...)...)
}

// Discover resolves the block device majMin (from the mount table); when that
// is not a block device (btrfs reports an anonymous device), it falls back to
// the mount source (e.g. /dev/nvme1n1).
func (d Discoverer) Discover(ctx context.Context, majMin uint64, source string) (Result, error) {
	name := ""
	if majMin != 0 {
		link := d.sys("dev", "block", fmt.Sprintf("%d:%d", unix.Major(majMin), unix.Minor(majMin)))
		if p, err := filepath.EvalSymlinks(link); err == nil {
			name = filepath.Base(p)
		}
	}
	if name == "" && strings.HasPrefix(source, "/dev/") {
		if p, err := filepath.EvalSymlinks(source); err == nil {
			name = filepath.Base(p)
		} else {
			name = filepath.Base(source)
		}
	}
	if name == "" {
		return Result{}, fmt.Errorf("volumes: no block device for %s", source)
	}
	var disks []string
	if err := d.leaves(name, &disks, 0); err != nil {
		return Result{}, err
	}
	res := Result{Disks: disks}
	var xen []string
	for _, disk := range disks {
		switch {
		case strings.HasPrefix(disk, "nvme"):
			if v := d.nvmeVolume(disk); v != "" {
				res.VolumeIDs = append(res.VolumeIDs, v)
			}
		case strings.HasPrefix(disk, "loop"):
			if v := d.loopVolume(disk); v != "" {
				res.VolumeIDs = append(res.VolumeIDs, v)
			}
		case strings.HasPrefix(disk, "xvd"), strings.HasPrefix(disk, "sd"):
			xen = append(xen, disk)
		}
	}
	if len(xen) > 0 && d.IMDS != nil {
		mapping, err := d.IMDS.BlockDeviceMapping(ctx)
		if err != nil {
			return res, fmt.Errorf("volumes: %w", err)
		}
		for _, disk := range xen {
			if dev, ok := mapping[canonicalXen(disk)]; ok {
				res.EC2Devices = append(res.EC2Devices, dev)
			}
		}
	}
	res.VolumeIDs = uniqSorted(res.VolumeIDs)
	res.EC2Devices = uniqSorted(res.EC2Devices)
	return res, nil
}

// leaves follows partitions to their disk and dm/md devices to their slaves,
// collecting the underlying disks.
func (d Discoverer) leaves(name string, out *[]string, depth int) error {
	if depth > 16 {
		return fmt.Errorf("volumes: slave chain too deep at %s", name)
	}
	dir, err := filepath.EvalSymlinks(d.sys("class", "block", name))
	if err != nil {
		return fmt.Errorf("volumes: %s: %w", name, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		// A partition's sysfs directory sits inside its disk's.
		disk := filepath.Base(filepath.Dir(dir))
		return d.leaves(disk, out, depth+1)
	}
	slaves, err := os.ReadDir(filepath.Join(dir, "slaves"))
	if err == nil && len(slaves) > 0 {
		for _, s := range slaves {
			if err := d.leaves(s.Name(), out, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	*out = append(*out, name)
	return nil
}

func (d Discoverer) nvmeVolume(disk string) string {
	b, err := os.ReadFile(d.sys("class", "block", disk, "device", "serial"))
	if err != nil {
		return ""
	}
	if m := nvmeSerial.FindStringSubmatch(strings.TrimSpace(string(b))); m != nil {
		return "vol-" + m[1]
	}
	return ""
}

func (d Discoverer) loopVolume(disk string) string {
	b, err := os.ReadFile(d.sys("class", "block", disk, "loop", "backing_file"))
	if err != nil {
		return ""
	}
	base := filepath.Base(strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)"))
	if m := loopBacking.FindStringSubmatch(base); m != nil {
		return m[1]
	}
	return ""
}

// canonicalXen maps xvdf, sdf, /dev/sda1, xvda1 to one key ("xvdf", "xvda"):
// EC2 names devices sdX while Xen guests see xvdX, and root is often a partition.
func canonicalXen(name string) string {
	name = strings.TrimPrefix(name, "/dev/")
	if strings.HasPrefix(name, "sd") {
		name = "xvd" + strings.TrimPrefix(name, "sd")
	}
	return trailingNum.ReplaceAllString(name, "")
}

func uniqSorted(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	sort.Strings(in)
	out := in[:1]
	for _, s := range in[1:] {
		if s != out[len(out)-1] {
			out = append(out, s)
		}
	}
	return out
}

// OnEC2 reports whether the machine looks like an EC2 instance from DMI or the
// Xen hypervisor uuid, so IMDS is asked only there (elsewhere it would only cost
// the timeout). It also returns the instance id when DMI carries it (Nitro).
func (d Discoverer) OnEC2() (bool, string) {
	read := func(parts ...string) string {
		b, _ := os.ReadFile(d.sys(parts...))
		return strings.TrimSpace(string(b))
	}
	if tag := read("devices", "virtual", "dmi", "id", "board_asset_tag"); strings.HasPrefix(tag, "i-") {
		return true, tag
	}
	if strings.Contains(read("devices", "virtual", "dmi", "id", "sys_vendor"), "Amazon EC2") {
		return true, ""
	}
	if strings.HasPrefix(strings.ToLower(read("hypervisor", "uuid")), "ec2") {
		return true, ""
	}
	return false, ""
}

// IMDS is a minimal IMDSv2 client with a short overall timeout per request
// (a freeze must not wait on a slow metadata service).
type IMDS struct {
	BaseURL string        // default http://169.254.169.254
	Timeout time.Duration // default 300ms
	Client  *http.Client
	token   string
}

// ErrIMDS wraps every metadata failure.
var ErrIMDS = errors.New("instance metadata unavailable")

func (m *IMDS) base() string {
	if m.BaseURL == "" {
		return "http://169.254.169.254"
	}
	return strings.TrimRight(m.BaseURL, "/")
}

func (m *IMDS) do(ctx context.Context, method, path string, hdr map[string]string) (string, error) {
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 300 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, m.base()+path, nil)
	if err != nil {
		return "", err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := m.Client
	if client == nil {
		// No proxy: IMDS is link-local, and an HTTP_PROXY must never see the token.
		client = &http.Client{Transport: &http.Transport{Proxy: nil}}
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: %s %s: %v", ErrIMDS, method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrIMDS, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%w: %s %s: HTTP %d", ErrIMDS, method, path, resp.StatusCode)
	}
	return string(body), nil
}

// Get fetches a metadata path (e.g. /latest/meta-data/instance-id) with an IMDSv2 token.
func (m *IMDS) Get(ctx context.Context, path string) (string, error) {
	if m.token == "" {
		tok, err := m.do(ctx, http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"})
		if err != nil {
			return "", err
		}
		m.token = strings.TrimSpace(tok)
	}
	return m.do(ctx, http.MethodGet, path, map[string]string{"X-aws-ec2-metadata-token": m.token})
}

// BlockDeviceMapping returns canonical kernel disk name → EC2 device name (/dev/sdf).
func (m *IMDS) BlockDeviceMapping(ctx context.Context) (map[string]string, error) {
	list, err := m.Get(ctx, "/latest/meta-data/block-device-mapping/")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, key := range strings.Fields(list) {
		key = strings.TrimSuffix(key, "/")
		if key != "ami" && key != "root" && !strings.HasPrefix(key, "ebs") {
			continue // ephemeralN are instance store, never snapshotted
		}
		dev, err := m.Get(ctx, "/latest/meta-data/block-device-mapping/"+key)
		if err != nil {
			return nil, err
		}
		dev = strings.TrimSpace(dev)
		if !strings.HasPrefix(dev, "/dev/") {
			dev = "/dev/" + dev
		}
		if _, ok := out[canonicalXen(dev)]; !ok {
			out[canonicalXen(dev)] = dev
		}
	}
	return out, nil
}
