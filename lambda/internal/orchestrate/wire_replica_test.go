package orchestrate_test

import (
	"testing"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/orchestrate"
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
