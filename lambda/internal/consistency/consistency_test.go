package consistency

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
)

// Every rule of README's "Honest tags" (and docs/architecture.md#consistency),
// one row each: what breaks it, and the verdict.
func TestDecide(t *testing.T) {
	sent := time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)
	const timeout = 5 * time.Second
	thawed := &contract.ThawReport{ThawedBy: contract.ThawedByCommand}
	good := func() Evidence {
		return Evidence{LockRequested: contract.LockAuto, LockTaken: contract.LockFTWRL, FreezeSent: sent, FreezeTimeout: timeout,
			CallsStarted: sent.Add(time.Second), AfterThaw: true, CallsReturned: sent.Add(2 * time.Second), Thaw: thawed}
	}
	with := func(f func(*Evidence)) Evidence { ev := good(); f(&ev); return ev }
	for _, tt := range []struct {
		name       string
		ev         Evidence
		crash      bool
		incomplete bool
		note       string // a substring of the note; "" for application
	}{
		{"everything held", good(), false, false, ""},
		{"auto resolved to none (no database)", with(func(ev *Evidence) { ev.LockTaken = contract.LockNone }), false, false, ""},
		{"none asked, none taken", with(func(ev *Evidence) { ev.LockRequested, ev.LockTaken = contract.LockNone, contract.LockNone }), false, false, ""},
		{"the lock asked for", with(func(ev *Evidence) {
			ev.LockRequested, ev.LockTaken = contract.LockBackupStage, contract.LockBackupStage
		}), false, false, ""},
		// replica stops the applier instead of taking a global lock; under the
		// same rules it is application (docs/architecture.md#replicas says
		// what the mode assumes, README's lock modes table when to choose it).
		{"replica asked, replica taken", with(func(ev *Evidence) {
			ev.LockRequested, ev.LockTaken = contract.LockReplica, contract.LockReplica
		}), false, false, ""},
		{"replica asked, another lock taken", with(func(ev *Evidence) { ev.LockRequested = contract.LockReplica }), true, false, "MySQL lock replica was requested but hostagent took ftwrl"},
		{"replica asked, none taken", with(func(ev *Evidence) { ev.LockRequested, ev.LockTaken = contract.LockReplica, contract.LockNone }), true, false, "replica was requested but hostagent reports none"},
		{"lock asked, none taken", with(func(ev *Evidence) { ev.LockRequested, ev.LockTaken = contract.LockFTWRL, contract.LockNone }), true, false, "MySQL lock ftwrl was requested but hostagent reports none"},
		{"lock asked, none reported", with(func(ev *Evidence) { ev.LockRequested, ev.LockTaken = contract.LockInstance, "" }), true, false, "reports none"},
		{"another lock taken", with(func(ev *Evidence) { ev.LockRequested = contract.LockBackupStage }), true, false, "requested but hostagent took ftwrl"},
		{"call sent at the freeze deadline", with(func(ev *Evidence) { ev.CallsStarted = sent.Add(timeout) }), true, false, "freeze deadline passed before the snapshot call"},
		{"call returned at the deadline", with(func(ev *Evidence) { ev.CallsReturned = sent.Add(timeout) }), false, false, ""},
		{"call returned after the deadline", with(func(ev *Evidence) { ev.CallsReturned = sent.Add(timeout + 1500*time.Millisecond) }), true, false, "snapshot call returned 1.5s after freeze_timeout 5s"},
		{"thaw not confirmed", with(func(ev *Evidence) { ev.Thaw = nil }), true, false, "thaw not confirmed"},
		{"late thaw after in-time calls keeps application", with(func(ev *Evidence) {
			ev.Thaw = &contract.ThawReport{ThawedBy: contract.ThawedByDeadline, Late: true}
		}), false, false, ""},
		{"late thaw after a late call", with(func(ev *Evidence) {
			ev.Thaw = &contract.ThawReport{ThawedBy: contract.ThawedByDeadline, Late: true}
			ev.CallsReturned = sent.Add(2 * timeout)
		}), true, false, "after freeze_timeout"},
		{"hold ended by recovery", with(func(ev *Evidence) { ev.Thaw = &contract.ThawReport{ThawedBy: contract.ThawedByRecovery} }), true, false, "hold ended by recovery, not by our thaw"},
		{"hold ended by recovery, reported late as hostagent does", with(func(ev *Evidence) {
			ev.Thaw = &contract.ThawReport{ThawedBy: contract.ThawedByRecovery, Late: true}
		}), true, false, "hold ended by recovery, not by our thaw"},
		{"hold ended by the deadline, not reported late", with(func(ev *Evidence) { ev.Thaw = &contract.ThawReport{ThawedBy: contract.ThawedByDeadline} }), true, false, "hold ended by deadline"},
		{"lock lost during the hold", with(func(ev *Evidence) {
			ev.Thaw = &contract.ThawReport{ThawedBy: contract.ThawedByCommand, LockLost: &contract.LockLoss{AfterMS: 812.4, Reason: "connection killed (KILL 42)"}}
		}), true, false, "MySQL lock lost 812ms into the hold: connection killed (KILL 42)"},
		{"lock lost and the thaw late", with(func(ev *Evidence) {
			ev.Thaw = &contract.ThawReport{ThawedBy: contract.ThawedByDeadline, Late: true, LockLost: &contract.LockLoss{AfterMS: 1, Reason: "server went away"}}
		}), true, false, "server went away"},
		{"not every volume snapshotted", with(func(ev *Evidence) { ev.SetError = errors.New("CreateSnapshot vol-b: IncorrectState") }), true, true, "incomplete set: CreateSnapshot vol-b: IncorrectState"},
		{"before the call only what is known counts", with(func(ev *Evidence) {
			ev.AfterThaw, ev.Thaw, ev.SetError, ev.CallsReturned = false, nil, errors.New("not yet"), time.Time{}
		}), false, false, ""},
		{"before the call: a lock mismatch already counts", with(func(ev *Evidence) {
			ev.AfterThaw, ev.Thaw, ev.LockRequested = false, nil, contract.LockBackupStage
		}), true, false, "took ftwrl"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := Decide(tt.ev)
			want := contract.ConsistencyApplication
			if tt.crash {
				want = contract.ConsistencyCrash
			}
			if v.Consistency != want || v.Incomplete != tt.incomplete {
				t.Fatalf("verdict %+v, want %s incomplete=%v", v, want, tt.incomplete)
			}
			if tt.note == "" && len(v.Notes) != 0 || !strings.Contains(v.Note(), tt.note) {
				t.Fatalf("note %q, want %q", v.Note(), tt.note)
			}
		})
	}
}

// Several broken rules: every reason is in the note, in rule order.
func TestDecideKeepsEveryReason(t *testing.T) {
	sent := time.Now()
	v := Decide(Evidence{LockRequested: contract.LockFTWRL, LockTaken: contract.LockNone, FreezeSent: sent, FreezeTimeout: time.Second,
		CallsStarted: sent, AfterThaw: true, CallsReturned: sent.Add(3 * time.Second), SetError: errors.New("partial")})
	want := []string{"reports none", "after freeze_timeout", "thaw not confirmed", "incomplete set: partial"}
	if len(v.Notes) != len(want) {
		t.Fatalf("notes %q", v.Notes)
	}
	for i, w := range want {
		if !strings.Contains(v.Notes[i], w) {
			t.Errorf("note %d = %q, want %q", i, v.Notes[i], w)
		}
	}
}

func TestUnacknowledged(t *testing.T) {
	v := Unacknowledged()
	if v.Consistency != contract.ConsistencyCrash || !v.Incomplete || v.Note() != UnacknowledgedNote {
		t.Fatalf("%+v", v)
	}
}

func TestLockHeld(t *testing.T) {
	for _, tt := range []struct {
		req, got string
		ok       bool
	}{
		{"auto", "ftwrl", true}, {"auto", "none", true}, {"none", "none", true}, {"ftwrl", "ftwrl", true},
		{"ftwrl", "none", false}, {"backup-stage", "ftwrl", false}, {"instance", "", false},
		{"replica", "replica", true}, {"replica", "ftwrl", false}, {"auto", "replica", true},
	} {
		if note, broken := lockAsAsked(Evidence{LockRequested: tt.req, LockTaken: tt.got}); broken == tt.ok {
			t.Errorf("lockAsAsked(%q,%q) = %v %q", tt.req, tt.got, !broken, note)
		}
	}
}
