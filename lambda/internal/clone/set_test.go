package clone

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/lambda/internal/tagvalue"
)

func snap(id string, tags map[string]string) ec2types.Snapshot {
	base := map[string]string{contract.TagRunID: "r1", contract.TagInstance: "i-1", contract.TagDevice: "/dev/sdf", contract.TagMounts: "/var/lib/mysql"}
	for k, v := range tags {
		base[k] = v
	}
	return ec2types.Snapshot{SnapshotId: aws.String(id), Tags: awsapi.Tags(base, tagvalue.Cut)}
}

// Which coordinates a set's tags give: the whole GTID state when tagged
// whole, else the binlog file and position; a replica's set its source's.
func TestPlanCoordinates(t *testing.T) {
	primary := map[string]string{contract.TagBinlogFile: "bin.000042", contract.TagBinlogPos: "4711"}
	replica := map[string]string{contract.TagSourceHost: "db-primary", contract.TagSourcePort: "3307",
		contract.TagSourceLogFile: "bin.000777", contract.TagSourceLogPos: "1234", contract.TagBinlogFile: "own.000001", contract.TagBinlogPos: "9"}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name string
		tags map[string]string
		want contract.CloneCoordinates
		host string
		err  string
	}{
		{"primary gtid", with(primary, contract.TagGTID, "0-1-5"), contract.CloneCoordinates{Mode: contract.CloneByGTID, GTID: "0-1-5"}, "", ""},
		{"primary gtid cut", with(primary, contract.TagGTID, "0-1-5,...(truncated)"), contract.CloneCoordinates{Mode: contract.CloneByFilePos, LogFile: "bin.000042", LogPos: 4711}, "", ""},
		{"primary file/pos", primary, contract.CloneCoordinates{Mode: contract.CloneByFilePos, LogFile: "bin.000042", LogPos: 4711}, "", ""},
		{"replica gtid", with(replica, contract.TagSourceGTID, "0-1-1200", contract.TagGTID, "0-100-3"), contract.CloneCoordinates{Mode: contract.CloneByGTID, GTID: "0-1-1200"}, "db-primary", ""},
		{"replica gtid cut", with(replica, contract.TagSourceGTID, "0-1-1200", contract.TagSourceGTIDTruncated, "2"), contract.CloneCoordinates{Mode: contract.CloneByFilePos, LogFile: "bin.000777", LogPos: 1234}, "db-primary", ""},
		{"none", map[string]string{}, contract.CloneCoordinates{}, "", "no replication coordinates"},
		{"bad pos", with(primary, contract.TagBinlogPos, "x"), contract.CloneCoordinates{}, "", "no replication coordinates"},
	}
	for _, tt := range tests {
		p, err := planSet([]ec2types.Snapshot{snap("snap-1", tt.tags)})
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v, want %q", tt.name, err, tt.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case p.coords != tt.want || p.sourceHost != tt.host || p.fromReplica != (tt.host != ""):
			t.Errorf("%s: coords %+v host %q replica %v", tt.name, p.coords, p.sourceHost, p.fromReplica)
		}
	}
	if p, _ := planSet([]ec2types.Snapshot{snap("snap-1", replica)}); p.sourcePort != 3307 {
		t.Errorf("replica source port %d", p.sourcePort)
	}
}

func TestPlanRefusesDuplicateDevices(t *testing.T) {
	tags := map[string]string{contract.TagGTID: "0-1-5"}
	other := map[string]string{contract.TagGTID: "0-1-5", contract.TagMounts: "/var/log/mysql"}
	if _, err := planSet([]ec2types.Snapshot{snap("snap-1", tags), snap("snap-2", other)}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("two snapshots at /dev/sdf: %v", err)
	}
	noDev := map[string]string{contract.TagGTID: "0-1-5", contract.TagDevice: ""}
	if _, err := planSet([]ec2types.Snapshot{snap("snap-1", noDev)}); err == nil || !strings.Contains(err.Error(), contract.TagDevice) {
		t.Errorf("no device tag: %v", err)
	}
}
