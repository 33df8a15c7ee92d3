package contract

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func intp(n int) *int { return &n }

func TestRestoreTagEncodesRelativeToTheMounts(t *testing.T) {
	mounts := []MountReport{{Path: "/var/lib/mysql"}, {Path: "/var/lib/mysql-binlog"}}
	ri := &RestoreInfo{DataDir: "/var/lib/mysql/", LogBinBasename: "/var/lib/mysql-binlog/mysql-bin", InnoDBPageSize: 16384, LowerCaseTableNames: intp(0)}
	got := NewRestoreTag(ri, mounts).Encode()
	want := "page=16384;lctn=0;datadir=.;binlog=mysql-bin;mount=/var/lib/mysql;binlog-mount=/var/lib/mysql-binlog"
	if got != want {
		t.Fatalf("Encode = %q\nwant     %q", got, want)
	}
	// Same mount for the binlog: no binlog-mount; a relative redo log
	// directory is the datadir's; a non-default system tablespace keeps its ';'.
	ri = &RestoreInfo{DataDir: "/data/mysql", LogBinBasename: "/data/mysql/binlog/bin", InnoDBPageSize: 4096, LowerCaseTableNames: intp(1),
		InnoDBDataFilePath: "ibdata1:12M;ibdata2:1G:autoextend", InnoDBLogGroupHomeDir: "./redo"}
	rt := NewRestoreTag(ri, []MountReport{{Path: "/data/"}})
	got = rt.Encode()
	want = "page=4096;lctn=1;datadir=mysql;binlog=mysql/binlog/bin;logdir=mysql/redo;datafile=ibdata1:12M%3Bibdata2:1G:autoextend;mount=/data"
	if got != want {
		t.Fatalf("Encode = %q\nwant     %q", got, want)
	}
	back, err := ParseRestoreTag(got)
	if err != nil {
		t.Fatal(err)
	}
	if back.DataFilePath != ri.InnoDBDataFilePath || back.LogGroupHomeDir != "mysql/redo" || back.DataDir != "mysql" || back.BinlogBasename != "mysql/binlog/bin" ||
		back.PageSize != 4096 || back.LowerCaseTableNames == nil || *back.LowerCaseTableNames != 1 || back.DataDirMount != "/data" || back.BinlogMount != "" {
		t.Fatalf("parsed back %+v", back)
	}
}

// A datadir on no frozen mount is not in the set: the tag says so instead
// of inventing a path.
func TestRestoreTagUnmapped(t *testing.T) {
	ri := &RestoreInfo{DataDir: "/srv/mysql", LogBinBasename: "/logs/bin", InnoDBPageSize: 16384}
	got := NewRestoreTag(ri, []MountReport{{Path: "/logs"}}).Encode()
	if want := "page=16384;binlog=bin;binlog-mount=/logs;unmapped=datadir"; got != want {
		t.Fatalf("Encode = %q, want %q", got, want)
	}
	rt, err := ParseRestoreTag(got)
	if err != nil || !slices.Equal(rt.Unmapped, []string{RestoreKeyDataDir}) || rt.DataDir != "" {
		t.Fatalf("parsed %+v, %v", rt, err)
	}
	if NewRestoreTag(nil, nil).Encode() != "" {
		t.Error("no RestoreInfo must give no tag")
	}
}

// Paths too long for one value lose whole fields, the mounts first, and
// cut names them; what is kept is never half a path.
func TestRestoreTagCutsWholeFields(t *testing.T) {
	long := "/" + strings.Repeat("d", 90)
	ri := &RestoreInfo{DataDir: long + "/" + strings.Repeat("m", 60), LogBinBasename: long + "/" + strings.Repeat("b", 60) + "/bin",
		InnoDBPageSize: 16384, LowerCaseTableNames: intp(0), InnoDBDataFilePath: "ibdata1:12M;ibdata2:12M:autoextend"}
	v := NewRestoreTag(ri, []MountReport{{Path: long}}).Encode()
	if n := utf8.RuneCountInString(v); n > MaxTagValueLen {
		t.Fatalf("%d characters: %q", n, v)
	}
	rt, err := ParseRestoreTag(v)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rt.Cut, RestoreKeyMount) || rt.DataDirMount != "" {
		t.Fatalf("mount not cut first: %q", v)
	}
	if rt.DataDir != strings.Repeat("m", 60) || rt.PageSize != 16384 || rt.BinlogBasename != strings.Repeat("b", 60)+"/bin" {
		t.Fatalf("a field that fits was lost or cut in half: %q → %+v", v, rt)
	}
	// Every field too long: only what fits stays, the rest is listed.
	ri.DataDir, ri.LogBinBasename = long+"/"+strings.Repeat("x", 200), long+"/"+strings.Repeat("y", 200)
	v = NewRestoreTag(ri, []MountReport{{Path: long}}).Encode()
	rt, err = ParseRestoreTag(v)
	if err != nil || utf8.RuneCountInString(v) > MaxTagValueLen || rt.PageSize != 16384 || !slices.Contains(rt.Cut, RestoreKeyBinlog) {
		t.Fatalf("%q → %+v, %v", v, rt, err)
	}
	for _, k := range rt.Cut {
		if strings.Contains(v, k+"=") {
			t.Errorf("%s both cut and present: %q", k, v)
		}
	}
}

func TestParseRestoreTagRefusesMalformedFields(t *testing.T) {
	for _, v := range []string{"page", "page=big", "lctn=x", "datadir=a%2", "datadir=a%zz"} {
		if _, err := ParseRestoreTag(v); err == nil || !strings.Contains(err.Error(), TagRestore) {
			t.Errorf("ParseRestoreTag(%q) = %v", v, err)
		}
	}
	rt, err := ParseRestoreTag("page=8192;future=1")
	if err != nil || rt.PageSize != 8192 {
		t.Errorf("an unknown key must be ignored: %+v, %v", rt, err)
	}
}

// Every key the Lambda may write is reserved from the user tag budget.
func TestSnapshotTagKeysReserveTheLambdasKeys(t *testing.T) {
	for _, k := range append(ReplicationTagKeys[:], TagRestore) {
		if !slices.Contains(SnapshotTagKeys[:], k) {
			t.Errorf("%s is written on snapshots but not in SnapshotTagKeys", k)
		}
	}
	if MaxUserTags != MaxTagsPerResource-len(SnapshotTagKeys) {
		t.Errorf("MaxUserTags %d", MaxUserTags)
	}
}

// README's tag table is what an operator reads: every key quiesce may write
// on a snapshot is explained there.
func TestREADMENamesEverySnapshotTag(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range SnapshotTagKeys {
		if !strings.Contains(string(b), "`"+k+"`") {
			t.Errorf("README.md does not mention tag %s", k)
		}
	}
	// The budget README states is the one the event enforces.
	budget := fmt.Sprintf("at most %d, since EC2 allows %d tags per snapshot and quiesce reserves one for each of the %d keys", MaxUserTags, MaxTagsPerResource, ReservedTags)
	if !strings.Contains(strings.Join(strings.Fields(string(b)), " "), budget) {
		t.Errorf("README.md does not state the user tag budget as %q", budget)
	}
}
