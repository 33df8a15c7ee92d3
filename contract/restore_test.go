package contract

import "testing"

func TestRelativeTo(t *testing.T) {
	mounts := []MountReport{{Path: "/"}, {Path: "/var/lib/mysql", VolumeIDs: []string{"vol-1"}}, {Path: "/data/"}}
	tests := []struct {
		path, mount, rel string
		ok               bool
	}{
		{"/var/lib/mysql", "/var/lib/mysql", ".", true},
		{"/var/lib/mysql/binlog", "/var/lib/mysql", "binlog", true},
		{"/var/lib/mysqlx/db", "/", "var/lib/mysqlx/db", true},
		{"/data/db", "/data/", "db", true},
	}
	for _, tt := range tests {
		m, rel, ok := RelativeTo(mounts, tt.path)
		if ok != tt.ok || m.Path != tt.mount || rel != tt.rel {
			t.Errorf("RelativeTo(%q) = %q, %q, %v; want %q, %q, %v", tt.path, m.Path, rel, ok, tt.mount, tt.rel, tt.ok)
		}
	}
	if _, _, ok := RelativeTo(mounts[1:], "/srv/db"); ok {
		t.Error("a path under no mount was placed")
	}
}
