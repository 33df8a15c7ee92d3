package orchestrate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/orchestrate"
	"github.com/quiesce/quiesce/test/awslocal"
)

// lock=replica reaches hostagent through the real document's allowedValues
// and, taken as asked, makes an application-consistent set.
func TestWireReplicaLock(t *testing.T) {
	e := newEnv(t)
	res, err := e.run(nil, `{"targets":{"instance_ids":["`+inst+`"]},"mounts":["/var/lib/mysql","/var/lib/mysql-binlog"],"freeze_timeout":"5s","mysql":{"lock":"replica"}}`)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	e.assertHonest(res)
	r := instResult(t, res, inst)
	if r.Status != orchestrate.StatusOK || r.Consistency != orchestrate.Application || r.Lock == nil || r.Lock.Mode != contract.LockReplica {
		t.Fatalf("result = %+v", r)
	}
	if got := e.host.Calls()[0].Params["mysqlLock"]; len(got) != 1 || got[0] != contract.LockReplica {
		t.Fatalf("freeze mysqlLock = %v", got)
	}
	for _, s := range e.srv.Snapshots() {
		if s.Tags[contract.TagLock] != contract.LockReplica {
			t.Errorf("snapshot %s: quiesce:lock = %q", s.ID, s.Tags[contract.TagLock])
		}
	}
}

// The instance tag quiesce:mysql-lock=replica overrides the event's lock.
func TestWireReplicaLockFromInstanceTag(t *testing.T) {
	e := newEnv(t)
	const other = "i-0123456789abcd001"
	addDB(e.srv, e.host, other, map[string]string{"quiesce:enabled": "true", "quiesce:mysql-lock": "replica"})
	res, err := e.run(nil, `{"targets":{"instance_ids":["`+other+`"]},"mounts":["/var/lib/mysql","/var/lib/mysql-binlog"],"freeze_timeout":"5s","mysql":{"lock":"ftwrl"}}`)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	e.assertHonest(res)
	r := instResult(t, res, other)
	if r.Status != orchestrate.StatusOK || r.Consistency != orchestrate.Application || r.Lock == nil || r.Lock.Mode != contract.LockReplica || r.Lock.Requested != contract.LockReplica {
		t.Fatalf("result = %+v", r)
	}
}

// withLock makes the scripted hostagent report more about its lock in the
// FreezeReport, the way the real one does on a replica.
func withLock(e *env, f func(l *contract.LockInfo)) {
	e.host.Override = func(inv awslocal.Invocation) (awslocal.CommandResult, bool) {
		if inv.Param("action") != "freeze" {
			return awslocal.CommandResult{}, false
		}
		res := e.host.Default(inv)
		var fr contract.FreezeReport
		if res.ResponseCode != 0 || json.Unmarshal([]byte(res.Stdout), &fr) != nil {
			return res, true
		}
		f(&fr.Lock)
		b, _ := json.Marshal(fr)
		res.Stdout = string(b) + "\n"
		return res, true
	}
}

func twoChannels() *contract.Replication {
	lag := int64(0)
	return &contract.Replication{Channels: []contract.ReplicaChannel{
		{Name: "", SourceHost: "db-primary.internal", SourcePort: 3306, SourceUser: "repl", SourceLogFile: "primary-bin.000117", SourceLogPos: 98127,
			GTID: "0-1-5501,1-7-42", UsingGTID: "Slave_Pos", IORunning: "Yes", SQLRunning: "No", SecondsBehind: &lag},
		{Name: "analytics", SourceHost: "10.0.3.9", SourcePort: 3307, SourceUser: "repl", SourceLogFile: "an-bin.000003", SourceLogPos: 4,
			GTID: "0-1-5501,1-7-42", IORunning: "Yes", SQLRunning: "No"},
	}, StoppedAppliers: []string{"", "analytics"}}
}

// A replica's FreezeReport: every snapshot of the set carries the default
// channel's source coordinates, the channel list, and the restore settings
// relative to the mounts; the result keeps every channel.
func TestWireTagsCarryReplicationAndRestore(t *testing.T) {
	e := newEnv(t)
	lctn := 0
	withLock(e, func(l *contract.LockInfo) {
		l.Replication = twoChannels()
		l.Restore = &contract.RestoreInfo{DataDir: "/var/lib/mysql", LogBinBasename: "/var/lib/mysql-binlog/mysql-bin", InnoDBPageSize: 16384, LowerCaseTableNames: &lctn}
	})
	res, err := e.run(nil, `{"targets":{"instance_ids":["`+inst+`"]},"mounts":["/var/lib/mysql","/var/lib/mysql-binlog"],"freeze_timeout":"5s","mysql":{"lock":"replica"}}`)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	e.assertHonest(res)
	want := map[string]string{
		contract.TagSourceHost: "db-primary.internal", contract.TagSourcePort: "3306", contract.TagSourceLogFile: "primary-bin.000117",
		contract.TagSourceLogPos: "98127", contract.TagSourceGTID: "0-1-5501,1-7-42", contract.TagSourceChannels: "'',analytics",
		contract.TagRestore: "page=16384;lctn=0;datadir=.;binlog=mysql-bin;mount=/var/lib/mysql;binlog-mount=/var/lib/mysql-binlog",
	}
	snaps := e.srv.Snapshots()
	if len(snaps) != 2 {
		t.Fatalf("snapshots = %d", len(snaps))
	}
	for _, s := range snaps {
		for k, v := range want {
			if s.Tags[k] != v {
				t.Errorf("snapshot %s (%s): %s = %q, want %q", s.ID, s.Tags[contract.TagMounts], k, s.Tags[k], v)
			}
		}
		if _, ok := s.Tags[contract.TagSourceGTIDTruncated]; ok {
			t.Errorf("snapshot %s: a GTID state that fits is marked truncated", s.ID)
		}
	}
	r := instResult(t, res, inst)
	if r.Lock == nil || r.Lock.Replication == nil || len(r.Lock.Replication.Channels) != 2 || r.Lock.Replication.Channels[1].SourceHost != "10.0.3.9" ||
		r.Lock.Restore == nil || r.Lock.Restore.DataDir != "/var/lib/mysql" {
		t.Fatalf("result lock = %+v", r.Lock)
	}
	if len(r.Errors) != 0 {
		t.Errorf("errors on a complete set: %v", r.Errors)
	}
}

// A datadir on no listed mount is said in the tag and in the result.
func TestWireRestoreSettingsOnNoListedMount(t *testing.T) {
	e := newEnv(t)
	withLock(e, func(l *contract.LockInfo) {
		l.Restore = &contract.RestoreInfo{DataDir: "/srv/mysql", LogBinBasename: "/var/lib/mysql-binlog/mysql-bin", InnoDBPageSize: 16384}
	})
	res, err := e.run(nil, baseEvent)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	e.assertHonest(res)
	for _, s := range e.srv.Snapshots() {
		if got := s.Tags[contract.TagRestore]; got != "page=16384;binlog=mysql-bin;binlog-mount=/var/lib/mysql-binlog;unmapped=datadir" {
			t.Errorf("snapshot %s: %s = %q", s.ID, contract.TagRestore, got)
		}
	}
	if r := instResult(t, res, inst); len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "unmapped=datadir") {
		t.Fatalf("errors = %v", r.Errors)
	}
}

// The budget is honest: the most user tags the event allows, plus every key
// quiesce may write at creation (a long GTID state, several channels,
// restore settings) and the verify verdict written later, fit EC2's 50.
func TestWireTagBudgetHoldsWithEveryKey(t *testing.T) {
	e := newEnv(t)
	var gtid []string
	for i := 0; i < 40; i++ {
		gtid = append(gtid, fmt.Sprintf("%d-%d-%d", i, 100+i, 1_000_000+i))
	}
	withLock(e, func(l *contract.LockInfo) {
		l.Replication = twoChannels()
		l.Replication.Channels[0].GTID = strings.Join(gtid, ",")
		l.Restore = &contract.RestoreInfo{DataDir: "/var/lib/mysql", InnoDBPageSize: 16384}
	})
	user := map[string]string{}
	for i := 0; i < event.MaxUserTags; i++ {
		user[fmt.Sprintf("user-%02d", i)] = "v"
	}
	b, _ := json.Marshal(user)
	res, err := e.run(nil, `{"targets":{"instance_ids":["`+inst+`"]},"mounts":["/var/lib/mysql","/var/lib/mysql-binlog"],"freeze_timeout":"5s","snapshot_tags":`+string(b)+`}`)
	if err != nil {
		t.Fatalf("run with %d user tags: %v", event.MaxUserTags, err)
	}
	e.assertHonest(res)
	verified := []ec2types.Tag{{Key: aws.String(contract.TagVerified), Value: aws.String(contract.VerifiedFailed)},
		{Key: aws.String(contract.TagVerifiedAt), Value: aws.String("2026-12-01T12:00:00Z")}, {Key: aws.String(contract.TagVerifyNote), Value: aws.String("x")},
		{Key: aws.String(contract.TagNote), Value: aws.String("y")}, {Key: aws.String(contract.TagIncomplete), Value: aws.String("true")}}
	for _, s := range e.srv.Snapshots() {
		if s.Tags[contract.TagSourceGTIDTruncated] == "" || len(s.Tags) < 40 {
			t.Fatalf("snapshot %s: want a truncated GTID and most keys, got %d tags %v", s.ID, len(s.Tags), s.Tags)
		}
		if _, err := e.EC2.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{s.ID}, Tags: verified}); err != nil {
			t.Fatalf("the verify verdict on top of %d tags: %v", len(s.Tags), err)
		}
	}
}
