package harness

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// CorruptLeafPages overwrites B-tree leaf pages only: not the roots or
// inner pages (the server must still find the table), not other page types.
func TestCorruptLeafPages(t *testing.T) {
	type pg struct {
		typ   uint16
		level uint16
	}
	pages := []pg{{0x0008, 0}, {0x0005, 0}, {0x0003, 0}, {filPageIndex, 1}, {filPageIndex, 0}, {0x0000, 0}, {filPageIndex, 0}}
	var img bytes.Buffer
	for _, p := range pages {
		b := make([]byte, innodbPageSize)
		binary.BigEndian.PutUint16(b[filPageType:], p.typ)
		binary.BigEndian.PutUint16(b[pageLevel:], p.level)
		img.Write(b)
	}
	path := filepath.Join(t.TempDir(), "accounts.ibd")
	if err := os.WriteFile(path, img.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := CorruptLeafPages(path)
	if err != nil || n != 2 {
		t.Fatalf("CorruptLeafPages = %d, %v; want the 2 leaf pages", n, err)
	}
	after, _ := os.ReadFile(path)
	for i := range pages {
		changed := !bytes.Equal(after[i*innodbPageSize:(i+1)*innodbPageSize], img.Bytes()[i*innodbPageSize:(i+1)*innodbPageSize])
		if want := i == 4 || i == 6; changed != want {
			t.Errorf("page %d changed=%v, want %v", i, changed, want)
		}
	}
	if err := os.WriteFile(path, img.Bytes()[:4*innodbPageSize], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := CorruptLeafPages(path); err == nil {
		t.Fatal("a tablespace without leaf pages was reported damaged")
	}
}
