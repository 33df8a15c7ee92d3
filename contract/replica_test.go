package contract

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestReplicationTagsDefaultChannel(t *testing.T) {
	r := &Replication{Channels: []ReplicaChannel{
		{Name: "b", SourceHost: "10.0.0.2", SourcePort: 3307, SourceLogFile: "b-bin.000009", SourceLogPos: 9},
		{Name: "", SourceHost: "db1.internal", SourcePort: 3306, SourceLogFile: "binlog.000003", SourceLogPos: 1234, GTID: "0-1-100,1-2-50"},
	}}
	got := ReplicationTags(r)
	want := map[string]string{
		TagSourceHost: "db1.internal", TagSourcePort: "3306", TagSourceLogFile: "binlog.000003",
		TagSourceLogPos: "1234", TagSourceGTID: "0-1-100,1-2-50", TagSourceChannels: "b,''",
	}
	if len(got) != len(want) {
		t.Errorf("tags %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestReplicationTagsFirstByNameWithoutDefault(t *testing.T) {
	r := &Replication{Channels: []ReplicaChannel{{Name: "z", SourcePort: 2}, {Name: "a", SourcePort: 1}}}
	if got := ReplicationTags(r)[TagSourcePort]; got != "1" {
		t.Errorf("port %q, want channel a's 1", got)
	}
	if ReplicationTags(nil) != nil || ReplicationTags(&Replication{}) != nil {
		t.Error("no channel must give no tags")
	}
}

func TestReplicationTagsGTIDTruncatedAtElements(t *testing.T) {
	// MySQL style: 10 sources, each uuid:interval (~45 chars), newline after commas.
	var elems []string
	for i := 0; i < 10; i++ {
		elems = append(elems, "3E11FA47-71CA-11E1-9E33-C80AA9429"+strconv.Itoa(100+i)+":1-123456")
	}
	r := &Replication{Channels: []ReplicaChannel{{GTID: strings.Join(elems, ",\n")}}}
	tags := ReplicationTags(r)
	v := tags[TagSourceGTID]
	if n := utf8.RuneCountInString(v); n > MaxTagValueLen || n == 0 {
		t.Fatalf("gtid tag has %d characters, want 1..%d", n, MaxTagValueLen)
	}
	kept := strings.Split(v, ",")
	for i, e := range kept {
		if e != elems[i] {
			t.Errorf("element %d = %q, want the whole %q", i, e, elems[i])
		}
	}
	if tags[TagSourceGTIDTruncated] != strconv.Itoa(len(elems)-len(kept)) {
		t.Errorf("truncated = %q, kept %d of %d", tags[TagSourceGTIDTruncated], len(kept), len(elems))
	}
	short := ReplicationTags(&Replication{Channels: []ReplicaChannel{{GTID: "0-1-5"}}})
	if _, ok := short[TagSourceGTIDTruncated]; ok || short[TagSourceGTID] != "0-1-5" {
		t.Errorf("short gtid tags %v", short)
	}
}

func TestReplicationTagsChannelListWithinLimit(t *testing.T) {
	var chans []ReplicaChannel
	for i := 0; i < 60; i++ {
		chans = append(chans, ReplicaChannel{Name: "channel-" + strconv.Itoa(i)})
	}
	v := ReplicationTags(&Replication{Channels: chans})[TagSourceChannels]
	if utf8.RuneCountInString(v) > MaxTagValueLen {
		t.Fatalf("channel list has %d characters", utf8.RuneCountInString(v))
	}
	parts := strings.Split(v, ",")
	last := parts[len(parts)-1]
	if !strings.HasPrefix(last, "+") || last != "+"+strconv.Itoa(60-(len(parts)-1)) {
		t.Errorf("channel list %q does not end in the count of names left out", v)
	}
	long := ReplicationTags(&Replication{Channels: []ReplicaChannel{{Name: strings.Repeat("x", 300)}, {Name: "y"}}})[TagSourceChannels]
	if long != "+2" {
		t.Errorf("channel list of names longer than a tag = %q, want +2", long)
	}
	host := ReplicationTags(&Replication{Channels: []ReplicaChannel{{SourceHost: strings.Repeat("é", 300)}}})[TagSourceHost]
	if utf8.RuneCountInString(host) != MaxTagValueLen {
		t.Errorf("host tag has %d characters, want %d", utf8.RuneCountInString(host), MaxTagValueLen)
	}
}
