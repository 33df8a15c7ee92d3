package restore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// Content kinds ProbeContent recognises. The filesystem ones are the names
// mount(2) takes; ext2/ext3 mount with the ext4 driver.
const (
	KindXFS   = "xfs"
	KindExt4  = "ext4"
	KindBtrfs = "btrfs"
	KindLVM   = "LVM2_member"
	KindMD    = "linux_raid_member"
)

const mdMagic = 0xa92b4efc

// ProbeContent reads the superblocks of a block device (or image file) and
// names what it holds, or "" when nothing known is there.
func ProbeContent(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("probe %s: %w", path, err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", fmt.Errorf("probe %s: size: %w", path, err)
	}
	return probe(f, size)
}

func probe(r io.ReaderAt, size int64) (string, error) {
	at := func(off int64, n int) []byte {
		if off < 0 || off+int64(n) > size {
			return nil
		}
		b := make([]byte, n)
		if _, err := r.ReadAt(b, off); err != nil {
			return nil
		}
		return b
	}
	if b := at(0, 4); bytes.Equal(b, []byte("XFSB")) {
		return KindXFS, nil
	}
	if b := at(1080, 2); b != nil && binary.LittleEndian.Uint16(b) == 0xEF53 {
		return KindExt4, nil
	}
	if b := at(0x10040, 8); bytes.Equal(b, []byte("_BHRfS_M")) {
		return KindBtrfs, nil
	}
	for sector := int64(0); sector < 4; sector++ {
		if b := at(sector*512, 32); b != nil && bytes.Equal(b[:8], []byte("LABELONE")) && bytes.Equal(b[24:32], []byte("LVM2 001")) {
			return KindLVM, nil
		}
	}
	// md superblocks: 1.1 at the start, 1.2 at 4 KiB, 1.0 8-16 KiB before
	// the end (4 KiB aligned), 0.90 in the last 64 KiB-aligned 64 KiB.
	mdAt := []int64{0, 4096, ((size >> 9) - 16) &^ 7 << 9, size&^(64<<10-1) - 64<<10}
	for _, off := range mdAt {
		if b := at(off, 4); b != nil && binary.LittleEndian.Uint32(b) == mdMagic {
			return KindMD, nil
		}
	}
	return "", nil
}
