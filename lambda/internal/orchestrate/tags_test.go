package orchestrate

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/quiesce/quiesce/contract"
)

func TestGTIDTruncation(t *testing.T) {
	short := "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5,\n 4E11FA47-71CA-11E1-9E33-C80AA9429562:1-9"
	if got := gtidValue(short); got != "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5,4E11FA47-71CA-11E1-9E33-C80AA9429562:1-9" {
		t.Fatalf("short = %q", got)
	}
	var parts []string
	for i := 0; i < 12; i++ {
		parts = append(parts, strings.Repeat("a", 8)+"-71ca-11e1-9e33-c80aa942956"+string(rune('0'+i%10))+":1-123456")
	}
	got := gtidValue(strings.Join(parts, ","))
	if utf8.RuneCountInString(got) > 256 || !strings.HasSuffix(got, "more (truncated)") {
		t.Fatalf("long = %q (%d)", got, len(got))
	}
	kept := strings.Split(strings.SplitN(got, " +", 2)[0], ",")
	for i, k := range kept {
		if k != parts[i] {
			t.Fatalf("domain %d cut: %q", i, k)
		}
	}
	if !strings.Contains(got, "+"+itoa(len(parts)-len(kept))+" more") {
		t.Fatalf("count of left-out domains wrong: %q", got)
	}
	// One giant domain cannot be kept whole: plain truncation, marked.
	if got := gtidValue(strings.Repeat("x", 600)); utf8.RuneCountInString(got) != 256 || !strings.HasSuffix(got, "(truncated)") {
		t.Fatalf("giant = %q", got)
	}
}

func itoa(n int) string { return string(rune('0' + n)) }

func TestBaseTags(t *testing.T) {
	fr := &contract.FreezeReport{Lock: contract.LockInfo{Mode: "none"}}
	tags := baseTags("s", "r", "i-1", "", []string{"/a", "/b"}, Application, fr, map[string]string{"team": "db"})
	want := map[string]string{"quiesce:stack": "s", "quiesce:run-id": "r", "quiesce:instance": "i-1", "quiesce:mounts": "/a,/b", "quiesce:consistency": "application", "quiesce:lock": "none", "team": "db", "Name": "quiesce i-1 r"}
	for k, v := range want {
		if tags[k] != v {
			t.Errorf("%s = %q, want %q", k, tags[k], v)
		}
	}
	if _, ok := tags["quiesce:binlog-file"]; ok {
		t.Error("binlog tag without a binlog")
	}
	// No replica, no server settings: none of their keys.
	for _, k := range append(contract.ReplicationTagKeys[:], contract.TagRestore) {
		if v, ok := tags[k]; ok {
			t.Errorf("%s = %q without lock.replication / lock.restore", k, v)
		}
	}
}

// A replica whose GTID state does not fit one value: the tag keeps whole
// elements and says how many were left out; a single channel lists none.
func TestBaseTagsReplicaGTIDCut(t *testing.T) {
	var elems []string
	for i := 0; i < 30; i++ {
		elems = append(elems, strings.Repeat("1", 3)+"-"+strings.Repeat("2", 5)+"-"+itoa(i%10)+"0000000")
	}
	fr := &contract.FreezeReport{Lock: contract.LockInfo{Mode: contract.LockReplica,
		Replication: &contract.Replication{Channels: []contract.ReplicaChannel{{SourceHost: "p", SourcePort: 3306, SourceLogFile: "b.000001", SourceLogPos: 4, GTID: strings.Join(elems, ",")}}}}}
	tags := baseTags("s", "r", "i-1", "", []string{"/a"}, Application, fr, nil)
	g := tags[contract.TagSourceGTID]
	if utf8.RuneCountInString(g) > 256 || tags[contract.TagSourceGTIDTruncated] == "" || !strings.HasPrefix(strings.Join(elems, ","), g) {
		t.Fatalf("source gtid %q (%d), truncated %q", g, len(g), tags[contract.TagSourceGTIDTruncated])
	}
	if _, ok := tags[contract.TagSourceChannels]; ok {
		t.Errorf("one channel listed: %q", tags[contract.TagSourceChannels])
	}
	if tags[contract.TagLock] != contract.LockReplica || tags[contract.TagSourceHost] != "p" {
		t.Errorf("tags %v", tags)
	}
}
