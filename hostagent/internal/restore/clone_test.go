package restore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckMountPoint(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	writeFile(t, filepath.Join(full, "ibdata1"), []byte("x"))
	file := filepath.Join(dir, "file")
	writeFile(t, file, nil)
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want string
	}{
		{empty, ""},
		{filepath.Join(dir, "new"), ""},
		{full, "not empty (it holds ibdata1)"},
		{file, "not a directory"},
		{filepath.Join(dir, "no/such"), "parent is not a directory"},
		{"rel", "clean absolute"},
		{empty + "/", "clean absolute"},
		{"/", "clean absolute"},
		{"/proc", "mounted there already"},
	}
	for _, tt := range tests {
		err := CheckMountPoint(tt.path)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.path, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrMountPoint)):
			t.Errorf("%s: %v, want ErrMountPoint saying %q", tt.path, err, tt.want)
		}
	}
}

func TestMountAtRefusesBeforeMounting(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "a/b")
	devs := []Device{{VolumeID: "vol-0aaaaaaaa", Path: "/dev/null"}, {VolumeID: "vol-0bbbbbbbb", Path: "/dev/null"}}
	if _, err := MountAt(t.Context(), devs, []string{a, b}, MountOptions{}); !errors.Is(err, ErrMountPoint) || !strings.Contains(err.Error(), "nest") {
		t.Errorf("nested points: %v", err)
	}
	if _, err := MountAt(t.Context(), devs, []string{a, a}, MountOptions{}); !errors.Is(err, ErrMountPoint) {
		t.Errorf("same point twice: %v", err)
	}
	if _, err := MountAt(t.Context(), devs, []string{a}, MountOptions{}); !errors.Is(err, ErrMountPoint) {
		t.Errorf("unpaired: %v", err)
	}
	if _, err := os.Stat(a); !os.IsNotExist(err) {
		t.Errorf("a refused MountAt created %s", a)
	}
}

func TestRemoveSourceState(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"auto.cnf", "master.info", "relay-log.info", "multi-master.info", "master-b.info",
		"relay-log-b.info", "ibdata1", "binlog.000001", "host-relay-bin.000001"} {
		writeFile(t, filepath.Join(dir, f), []byte("x"))
	}
	removed, err := RemoveSourceState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(removed, ","); got != "auto.cnf,master-b.info,master.info,multi-master.info,relay-log-b.info,relay-log.info" {
		t.Errorf("removed %s", got)
	}
	for _, keep := range []string{"ibdata1", "binlog.000001", "host-relay-bin.000001"} {
		if _, err := os.Stat(filepath.Join(dir, keep)); err != nil {
			t.Errorf("%s removed: %v", keep, err)
		}
	}
}

func TestDetachedArgsKeepClonePassive(t *testing.T) {
	a := DetachedSpec{DataDir: "/var/lib/mysql", ServerID: 201, OperatorOptions: []string{"--port=3307", "--read-only=0"}}.args()
	got := strings.Join(a, " ")
	want := "--no-defaults --port=3307 --read-only=0 --datadir=/var/lib/mysql --server-id=201 --loose-skip-slave-start --loose-skip-replica-start --read-only=1 --user=root"
	if got != want {
		t.Errorf("args\n got %s\nwant %s", got, want)
	}
}

func TestRewriteLogIndexes(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	writeFile(t, filepath.Join(a, "db/ibdata1"), []byte("x"))
	writeFile(t, filepath.Join(b, "binlog/bin.index"), []byte("/src/b/binlog/bin.000001\n/src/b/binlog/bin.000002\n"))
	writeFile(t, filepath.Join(a, "db/host-relay-bin.index"), []byte("./host-relay-bin.000003\n"))
	writeFile(t, filepath.Join(a, "db/app.index"), []byte("/etc/passwd\n"))
	set := &MountedSet{Mounts: []Mount{{Path: a}, {Path: b}}}
	changed, err := set.RewriteLogIndexes()
	if err != nil || len(changed) != 1 || changed[0] != filepath.Join(b, "binlog/bin.index") {
		t.Fatalf("changed %v, %v", changed, err)
	}
	got, _ := os.ReadFile(filepath.Join(b, "binlog/bin.index"))
	if want := filepath.Join(b, "binlog/bin.000001") + "\n" + filepath.Join(b, "binlog/bin.000002") + "\n"; string(got) != want {
		t.Errorf("index %q, want %q", got, want)
	}
	if got, _ := os.ReadFile(filepath.Join(a, "db/app.index")); string(got) != "/etc/passwd\n" {
		t.Errorf("a file that is not a log index was rewritten: %q", got)
	}
}
