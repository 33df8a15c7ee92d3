package orchestrate

import (
	"strconv"
	"strings"

	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/awsapi"
	"github.com/quiesce/quiesce/lambda/internal/tagvalue"
)

// gtidValue fits a GTID set into a tag value keeping whole domains/UUID
// sets ("uuid:1-5,uuid2:1-9" or MariaDB "0-1-100,1-2-5") and says how many
// were left out, so nobody mistakes a cut set for the full position.
func gtidValue(gtid string) string {
	g := strings.Join(strings.Fields(gtid), "")
	if tagvalue.Fits(g) {
		return g
	}
	parts := strings.Split(g, ",")
	for n := len(parts) - 1; n >= 1; n-- {
		out := strings.Join(parts[:n], ",") + " +" + strconv.Itoa(len(parts)-n) + " more (truncated)"
		if tagvalue.Fits(out) {
			return out
		}
	}
	return tagvalue.Truncate(g)
}

// baseTags are the tags every snapshot of an instance gets at creation.
func baseTags(stack, runID, instanceID, name string, mounts []string, consistency string, fr *contract.FreezeReport, user map[string]string) map[string]string {
	t := map[string]string{}
	for k, v := range user {
		t[k] = tagvalue.Truncate(v)
	}
	display := instanceID
	if name != "" {
		display = name
	}
	t[contract.TagName] = tagvalue.Truncate("quiesce " + display + " " + runID)
	t[contract.TagStack] = stack
	t[contract.TagRunID] = runID
	t[contract.TagInstance] = instanceID
	t[contract.TagMounts] = tagvalue.Truncate(strings.Join(mounts, ","))
	t[contract.TagConsistency] = consistency
	if fr != nil {
		mode := fr.Lock.Mode
		if mode == "" {
			mode = contract.LockNone
		}
		t[contract.TagLock] = mode
		if fr.Lock.BinlogFile != "" {
			t[contract.TagBinlogFile] = tagvalue.Truncate(fr.Lock.BinlogFile)
			t[contract.TagBinlogPos] = strconv.FormatUint(fr.Lock.BinlogPos, 10)
		}
		if fr.Lock.GTIDExecuted != "" {
			t[contract.TagGTID] = gtidValue(fr.Lock.GTIDExecuted)
		}
		for k, v := range restoreTags(fr) {
			t[k] = v
		}
	}
	return t
}

// restoreTags are what a restore or a clone of the set needs besides the
// binlog position: a replica's source coordinates (the default channel's;
// quiesce:source-channels lists every channel when there are several, and
// the result JSON keeps them all) and the server settings a restored copy
// must start with (contract.TagRestore), both cut to fit a tag value by
// the contract, which says what was left out.
func restoreTags(fr *contract.FreezeReport) map[string]string {
	t := contract.ReplicationTags(fr.Lock.Replication)
	if t == nil {
		t = map[string]string{}
	}
	if v := contract.NewRestoreTag(fr.Lock.Restore, fr.Mounts).Encode(); v != "" {
		t[contract.TagRestore] = v
	}
	return t
}

func ec2Tags(m map[string]string) []ec2types.Tag { return awsapi.Tags(m, nil) }
