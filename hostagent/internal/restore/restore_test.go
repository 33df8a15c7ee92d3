package restore

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/quiesce/quiesce/hostagent/internal/state"
	"github.com/quiesce/quiesce/hostagent/internal/volumes"
	"github.com/quiesce/quiesce/internal/mountinfo"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// image returns a 1 MiB file with magic bytes at off.
func image(t *testing.T, dir, name string, off int64, magic []byte) string {
	t.Helper()
	b := make([]byte, 1<<20)
	if magic != nil {
		copy(b[off:], magic)
	}
	p := filepath.Join(dir, name)
	writeFile(t, p, b)
	return p
}

func TestProbeContent(t *testing.T) {
	dir := t.TempDir()
	md := make([]byte, 4)
	binary.LittleEndian.PutUint32(md, mdMagic)
	ext := []byte{0x53, 0xEF}
	lvm := append([]byte("LABELONE"), make([]byte, 16)...)
	lvm = append(lvm, []byte("LVM2 001")...)
	tests := []struct {
		name  string
		off   int64
		magic []byte
		want  string
	}{
		{"xfs", 0, []byte("XFSB"), KindXFS},
		{"ext4", 1080, ext, KindExt4},
		{"btrfs", 0x10040, []byte("_BHRfS_M"), KindBtrfs},
		{"lvm", 512, lvm, KindLVM},
		{"md12", 4096, md, KindMD},
		{"md10", (1<<20 - 16*512) &^ (8*512 - 1), md, KindMD},
		{"md090", 1<<20 - 64<<10, md, KindMD},
		{"empty", 0, nil, ""},
	}
	for _, tt := range tests {
		got, err := ProbeContent(image(t, dir, tt.name, tt.off, tt.magic))
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

// fakeSys lays out sysfs class/block entries for FindDevices.
func fakeSys(t *testing.T) (sysRoot, devRoot string) {
	t.Helper()
	root := t.TempDir()
	return filepath.Join(root, "sys"), filepath.Join(root, "dev")
}

func addDisk(t *testing.T, sys, name string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		writeFile(t, filepath.Join(sys, "class", "block", name, rel), []byte(content))
	}
	if err := os.MkdirAll(filepath.Join(sys, "class", "block", name, "holders"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFindDevices(t *testing.T) {
	sys, dev := fakeSys(t)
	addDisk(t, sys, "nvme1n1", map[string]string{"device/serial": "vol0abc12345678\n"})
	addDisk(t, sys, "loop3", map[string]string{"loop/backing_file": "/x/vol-0def12345678.img\n"})
	addDisk(t, sys, "loop4", map[string]string{"loop/backing_file": "/x/vol-0aaa11112222.img\n"})
	addDisk(t, sys, "loop5", map[string]string{"loop/backing_file": "/x/vol-0bbb11112222.img\n"})
	addDisk(t, sys, "nvme2n1", map[string]string{"device/serial": "vol0ccc11112222"})
	addDisk(t, sys, "nvme2n1/nvme2n1p1", map[string]string{"partition": "1"})
	addDisk(t, sys, "nvme2n1p1", map[string]string{"partition": "1"})
	image(t, dev, "nvme1n1", 0, []byte("XFSB"))
	image(t, dev, "loop3", 1080, []byte{0x53, 0xEF})
	image(t, dev, "loop4", 512, append(append([]byte("LABELONE"), make([]byte, 16)...), "LVM2 001"...))
	image(t, dev, "loop5", 0, nil)
	image(t, dev, "nvme2n1", 0, nil)
	image(t, dev, "nvme2n1p1", 0, []byte("XFSB"))
	o := FindOptions{Sys: volumes.Discoverer{SysRoot: sys}, DevRoot: dev}
	ctx := context.Background()

	got, err := FindDevices(ctx, []string{"vol-0def12345678", "vol-0abc12345678", "vol-0ccc11112222"}, o)
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
		{VolumeID: "vol-0def12345678", Path: filepath.Join(dev, "loop3"), Disk: "loop3", FSType: KindExt4},
		{VolumeID: "vol-0abc12345678", Path: filepath.Join(dev, "nvme1n1"), Disk: "nvme1n1", FSType: KindXFS},
		{VolumeID: "vol-0ccc11112222", Path: filepath.Join(dev, "nvme2n1p1"), Disk: "nvme2n1", FSType: KindXFS},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	for _, tc := range []struct {
		id   string
		want error
	}{
		{"vol-0aaa11112222", ErrUnsupported},
		{"vol-0bbb11112222", ErrUnsupported},
		{"vol-0999", ErrNotAttached},
	} {
		if _, err := FindDevices(ctx, []string{tc.id}, o); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.id) {
			t.Errorf("%s: err %v, want %v naming the volume", tc.id, err, tc.want)
		}
	}
	// A volume held by a dm device (an activated LVM) is in use.
	addDisk(t, sys, "nvme1n1/holders/dm-0", nil)
	if _, err := FindDevices(ctx, []string{"vol-0abc12345678"}, o); !errors.Is(err, ErrInUse) {
		t.Errorf("held disk: %v, want ErrInUse", err)
	}
	// Waiting: a volume that never shows up fails after Wait.
	o.Wait = 300 * time.Millisecond
	start := time.Now()
	if _, err := FindDevices(ctx, []string{"vol-0999"}, o); !errors.Is(err, ErrNotAttached) || time.Since(start) < 300*time.Millisecond {
		t.Errorf("wait: %v after %v", err, time.Since(start))
	}
}

func setOf(dirs ...string) *MountedSet {
	s := &MountedSet{}
	for _, d := range dirs {
		s.Mounts = append(s.Mounts, Mount{VolumeID: filepath.Base(d), Path: d})
	}
	return s
}

func TestFindDataDir(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "vol-a"), filepath.Join(root, "vol-b")
	writeFile(t, filepath.Join(a, "mysql/data/ibdata1"), nil)
	writeFile(t, filepath.Join(a, "mysql/data/mysql/global_priv.frm"), nil)
	writeFile(t, filepath.Join(a, "mysql/data/shop/ibdata1"), nil) // a schema below the datadir is not a second one
	writeFile(t, filepath.Join(b, "binlogs/binlog.000001"), nil)
	set := setOf(a, b)
	if got, err := set.FindDataDir(""); err != nil || got != filepath.Join(a, "mysql/data") {
		t.Errorf("search: %q, %v", got, err)
	}
	if got, err := set.FindDataDir("mysql/data"); err != nil || got != filepath.Join(a, "mysql/data") {
		t.Errorf("tagged: %q, %v", got, err)
	}
	if _, err := set.FindDataDir("binlogs"); !errors.Is(err, ErrNoDataDir) {
		t.Errorf("tagged path without a datadir: %v", err)
	}
	if _, err := set.FindDataDir("../etc"); !errors.Is(err, ErrBadPath) {
		t.Errorf("escaping path: %v", err)
	}
	writeFile(t, filepath.Join(b, "old/mysql.ibd"), nil)
	if _, err := set.FindDataDir(""); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("two datadirs: %v", err)
	}
	if _, err := setOf(b + "/binlogs").FindDataDir(""); !errors.Is(err, ErrNoDataDir) {
		t.Errorf("none: %v", err)
	}
}

func TestBinlogBaseCheckAndIndex(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "vol-a"), filepath.Join(root, "vol-b")
	data := filepath.Join(a, "data")
	writeFile(t, filepath.Join(data, "ibdata1"), nil)
	writeFile(t, filepath.Join(data, "binlog.000001"), make([]byte, 100))
	writeFile(t, filepath.Join(data, "binlog.000002"), make([]byte, 342))
	writeFile(t, filepath.Join(data, "binlog.index"), []byte("/var/lib/mysql/binlog.000001\n/var/lib/mysql/binlog.000002\n"))
	writeFile(t, filepath.Join(b, "logs/bin.index"), []byte("./bin.000001\n"))
	writeFile(t, filepath.Join(b, "top.index"), []byte("./top.000001\n"))
	set := setOf(a, b)
	for _, tc := range []struct{ rel, file, want string }{
		{"", "binlog.000002", filepath.Join(data, "binlog")},
		{"", "", filepath.Join(data, "binlog")},
		{"data/binlog", "", filepath.Join(data, "binlog")},
		{"logs/bin", "", filepath.Join(b, "logs/bin")},
		{"top", "", filepath.Join(b, "top")}, // a bare name sits at a volume's root: the one with top.index
	} {
		if got, err := set.FindBinlogBase(data, tc.rel, tc.file); err != nil || got != tc.want {
			t.Errorf("FindBinlogBase(%q, %q) = %q, %v; want %q", tc.rel, tc.file, got, err, tc.want)
		}
	}
	if _, err := set.FindBinlogBase(data, "nowhere/bin", ""); !errors.Is(err, ErrNoDataDir) {
		t.Errorf("basename on no volume: %v", err)
	}
	base := filepath.Join(data, "binlog")
	if bc, p := CheckBinlog(base, "binlog.000002", 342); !bc.Match || len(p) != 0 || bc.Size != 342 {
		t.Errorf("matching binlog: %+v %v", bc, p)
	}
	if bc, p := CheckBinlog(base, "binlog.000002", 300); bc.Match || len(p) != 1 || !strings.Contains(p[0], "342 bytes") {
		t.Errorf("wrong position: %+v %v", bc, p)
	}
	if bc, p := CheckBinlog(base, "binlog.000001", 100); bc.Match || len(p) != 1 || !strings.Contains(p[0], "not the last") {
		t.Errorf("older file: %+v %v", bc, p)
	}
	if bc, p := CheckBinlog(base, "binlog.000003", 100); bc.Match || len(p) != 1 || !strings.Contains(p[0], "missing") {
		t.Errorf("missing file: %+v %v", bc, p)
	}
	changed, err := RewriteIndex(base)
	if err != nil || !changed {
		t.Fatalf("RewriteIndex: %v %v", changed, err)
	}
	got, _ := os.ReadFile(base + ".index")
	if want := data + "/binlog.000001\n" + data + "/binlog.000002\n"; string(got) != want {
		t.Errorf("index now %q, want %q", got, want)
	}
	if changed, err := RewriteIndex(filepath.Join(b, "logs/bin")); err != nil || changed {
		t.Errorf("relative entries were rewritten: %v %v", changed, err)
	}
}

// The files an operator hands verify and clone (--mysqld-options-file,
// --check-sql) parse into one element per option or statement.
func TestParseOperatorFiles(t *testing.T) {
	for _, tt := range []struct {
		name  string
		parse func(io.Reader) ([]string, error)
		in    string
		want  []string
	}{
		{"option file", ParseOptionFile,
			"# comment\n[client]\nuser=x\n[mysqld]\ninnodb_buffer_pool_size = 64M\nskip-name-resolve\n[mariadbd]\nsql_mode=\"STRICT_ALL_TABLES\"\n",
			[]string{"--innodb_buffer_pool_size=64M", "--skip-name-resolve", "--sql_mode=STRICT_ALL_TABLES"}},
		{"check statements", SplitStatements,
			"-- invariants\nSELECT COUNT(*) > 0\n  FROM shop.orders;\n# hash comment\nSELECT 1 = 1\n;\n\nSELECT 'last'",
			[]string{"SELECT COUNT(*) > 0\n  FROM shop.orders", "SELECT 1 = 1", "SELECT 'last'"}},
	} {
		got, err := tt.parse(strings.NewReader(tt.in))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	for _, bad := range []string{"[mysqld]\n!include /etc/x.cnf\n", "[mysqld\n", "[mysqld]\nbad name=1\n"} {
		if _, err := ParseOptionFile(strings.NewReader(bad)); !errors.Is(err, ErrOptionFile) {
			t.Errorf("%q: %v, want ErrOptionFile", bad, err)
		}
	}
}

func TestTruthyAndGTID(t *testing.T) {
	for v, want := range map[string]bool{"1": true, "TRUE": true, "2.5": true, "0": false, "": false, "no": false, "0.0": false} {
		if truthy(v) != want {
			t.Errorf("truthy(%q) != %v", v, want)
		}
	}
	if !SameGTID("0-1-42,1-2-7", "1-2-7, 0-1-42") || SameGTID("0-1-42", "0-1-43") || !SameGTID("", "") {
		t.Error("MariaDB GTID positions compared wrong")
	}
	if !SameGTID("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5\n") {
		t.Error("MySQL GTID sets compared wrong")
	}
}

func TestParseRecovery(t *testing.T) {
	crashLog := `2026-12-01 20:50:01 0 [Note] Starting MariaDB 10.11.19-MariaDB source revision
2026-12-01 20:50:01 0 [Note] InnoDB: Initializing buffer pool, total size = 128.000MiB
2026-12-01 20:50:01 0 [Note] InnoDB: Starting crash recovery from checkpoint LSN=47627
2026-12-01 20:50:01 0 [Note] InnoDB: To recover: 112 pages
2026-12-01 20:50:01 0 [Note] InnoDB: 128 rollback segments are active.
2026-12-01 20:50:01 0 [Note] Recovering after a crash using /m/binlog
2026-12-01 20:50:01 0 [Note] Starting table crash recovery...
2026-12-01 20:50:01 0 [Note] Crash table recovery finished.
2026-12-01 20:50:01 0 [Note] /usr/sbin/mariadbd: ready for connections.`
	r := ParseRecovery(strings.NewReader(crashLog))
	if !r.Ran || len(r.Messages) != 5 || !strings.Contains(r.Messages[0], "Starting crash recovery") {
		t.Errorf("crash log: %+v", r)
	}
	clean := "2026-12-01 20:50:01 0 [Note] InnoDB: Initializing buffer pool\n2026-12-01 [Note] /usr/sbin/mariadbd: ready for connections.\n"
	if r := ParseRecovery(strings.NewReader(clean)); r.Ran || len(r.Messages) != 0 {
		t.Errorf("clean log: %+v", r)
	}
	errs := ErrorLines(strings.NewReader("a [ERROR] one\nb [Note] x\n/usr/sbin/mariadbd: Can't change dir\nrecovered pages: 0% 52%\nc [Warning] w\nd [ERROR] Aborting\n"), 2)
	if !reflect.DeepEqual(errs, []string{"/usr/sbin/mariadbd: Can't change dir", "d [ERROR] Aborting"}) {
		t.Errorf("ErrorLines: %q", errs)
	}
}

func TestUndoRunsInReverseDespiteErrors(t *testing.T) {
	var order []string
	var u Undo
	u.Push("a", func(context.Context) error { order = append(order, "a"); return nil })
	u.Push("b", func(context.Context) error { order = append(order, "b"); return errors.New("boom") })
	u.Push("c", func(ctx context.Context) error {
		order = append(order, "c")
		return ctx.Err() // a cancelled caller context must not reach the steps
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := u.Run(ctx, time.Second)
	if !reflect.DeepEqual(order, []string{"c", "b", "a"}) || err == nil || !strings.Contains(err.Error(), "b: boom") || strings.Contains(err.Error(), "canceled") {
		t.Errorf("order %v, err %v", order, err)
	}
	if err := u.Run(ctx, time.Second); err != nil || len(order) != 3 {
		t.Error("a second Run repeated steps")
	}
}

// deadProc returns the identity of a process that has exited.
func deadProc(t *testing.T) state.Proc {
	t.Helper()
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p, err := state.ProcOf(cmd.Process.Pid)
	if err != nil {
		p = state.Proc{PID: cmd.Process.Pid, Start: 1}
	}
	_ = cmd.Wait()
	return p
}

func TestRegistryBusyAndStale(t *testing.T) {
	ctx := context.Background()
	reg, err := OpenRegistry(filepath.Join(t.TempDir(), "restore"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := reg.Begin(ctx, "r1", "", []string{"vol-01", "vol-02"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Begin(ctx, "r2", "", []string{"vol-03", "vol-02"}); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "vol-02") {
		t.Fatalf("second run on vol-02: %v, want ErrBusy naming it", err)
	}
	if _, err := os.Stat(reg.lockPath("vol-03")); !os.IsNotExist(err) {
		t.Error("a refused run left a lock behind")
	}
	if err := j.End(); err != nil {
		t.Fatal(err)
	}
	// A run whose owner died (pid + start time no longer match) is stale:
	// its work dir goes, its locks go, the volume is free again.
	work, err := NewWorkDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(work, "run/error.log"), []byte("x"))
	j2, err := reg.Begin(ctx, "r3", work, []string{"vol-02"})
	if err != nil {
		t.Fatal(err)
	}
	j2.Owner = deadProc(t)
	if err := j2.save(); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(reg.lockPath("vol-02"), volumeLock{RunID: "r3", Owner: j2.Owner, Journal: j2.path}); err != nil {
		t.Fatal(err)
	}
	j4, err := reg.Begin(ctx, "r4", "", []string{"vol-02"})
	if err != nil {
		t.Fatalf("stale lock not taken over: %v", err)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("stale run's work dir left: %v", err)
	}
	if _, err := os.Stat(j2.path); !os.IsNotExist(err) {
		t.Errorf("stale journal left: %v", err)
	}
	if err := j4.End(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(reg.Dir, "*.lock")); len(left) != 0 && !(len(left) == 1 && filepath.Base(left[0]) == ".lock") {
		t.Errorf("locks left: %v", left)
	}
}

func TestServerArgsKeepPrivateOptionsLast(t *testing.T) {
	spec := ServerSpec{Binary: "/usr/sbin/mariadbd", DataDir: "/w/m/d", RunDir: "/w/run", UID: 0, ServerID: 7,
		Settings: []string{"--innodb-page-size=16384"}, OperatorOptions: []string{"--socket=/var/run/mysqld/mysqld.sock", "--port=3306"},
		Extra: []string{"--skip-grant-tables"}}
	a := spec.args()
	if a[0] != "--no-defaults" || a[len(a)-1] != "--skip-grant-tables" {
		t.Errorf("order: %q", a)
	}
	idx := func(s string) int {
		for i, v := range a {
			if v == s {
				return i
			}
		}
		return -1
	}
	if idx("--socket=/w/run/mysqld.sock") < idx("--socket=/var/run/mysqld/mysqld.sock") || idx("--skip-networking") < idx("--port=3306") {
		t.Errorf("the operator's options must not override privacy: %q", a)
	}
	for _, want := range []string{"--skip-log-bin", "--user=root", "--server-id=7", "--loose-skip-slave-start", "--loose-skip-replica-start", "--innodb-page-size=16384"} {
		if idx(want) < 0 {
			t.Errorf("missing %s in %q", want, a)
		}
	}
}

func TestReadMountsUnescapes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mountinfo")
	writeFile(t, p, []byte("36 35 7:3 / /w/quiesce-restore-1/vol\\0401 rw,relatime shared:1 - xfs /dev/loop3 rw,nouuid\n"+
		"37 35 0:5 / /proc rw - proc proc rw\n"))
	old := readMounts
	readMounts = func() ([]mountinfo.Mount, error) {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return mountinfo.Parse(f)
	}
	defer func() { readMounts = old }()
	m, err := readMounts()
	if err != nil || len(m) != 2 || m[0].MountPoint != "/w/quiesce-restore-1/vol 1" || m[0].Source != "/dev/loop3" || m[0].Dev != unix.Mkdev(7, 3) {
		t.Fatalf("%+v %v", m, err)
	}
	if under, _ := mountsUnder("/w/quiesce-restore-1"); len(under) != 1 {
		t.Errorf("mountsUnder: %v", under)
	}
	if under, _ := mountsUnder("/w/quiesce-restore"); len(under) != 0 {
		t.Errorf("prefix without a slash matched: %v", under)
	}
}
