// Package consistency decides what a snapshot set may be tagged: the rule
// README's "Honest tags" states and docs/architecture.md#consistency explains,
// as one pure function from what the Lambda saw to the verdict.
//
// A set is application-consistent only if
//   - hostagent holds the MySQL lock the operator asked for (or none was
//     asked for: auto resolves to none when there is no database),
//   - every snapshot call was sent before, and returned within, freeze_timeout
//     of the Lambda sending the freeze (hostagent's deadline starts later, so
//     the freeze provably held; no clock sync is needed),
//   - the ThawReport came back, thawed by the thaw command or, when late, by
//     hostagent's deadline (which, by the rule above, fell after every call
//     returned); a hold ended by recovery is not trusted,
//   - the MySQL lock lasted the whole hold (ThawReport.lock_lost unset),
//   - and every volume was snapshotted.
//
// Anything else is crash, with a note per reason. A snapshot created by a
// call whose response was lost is never part of the acknowledged set: crash
// and incomplete. Verdicts only ever go down: the snapshots are created with
// the verdict known before the call (Decide before the thaw) and re-tagged
// when the final one differs.
package consistency

import (
	"fmt"
	"strings"
	"time"

	"github.com/quiesce/quiesce/contract"
)

// Evidence is what the Lambda knows about one instance's hold, on its own
// clock.
type Evidence struct {
	// LockRequested is the --mysql-lock the Lambda sent, LockTaken the mode
	// the FreezeReport says hostagent holds.
	LockRequested, LockTaken string
	// FreezeSent is when the Lambda sent the freeze; hostagent's deadline
	// comes FreezeTimeout after a later moment.
	FreezeSent    time.Time
	FreezeTimeout time.Duration
	// CallsStarted is when the snapshot calls were about to be sent.
	CallsStarted time.Time

	// AfterThaw is false for the verdict the snapshots are created with,
	// when only the fields above are known.
	AfterThaw bool
	// CallsReturned is when the last snapshot call returned (or was abandoned).
	CallsReturned time.Time
	// Thaw is the ThawReport; nil when the thaw was not confirmed.
	Thaw *contract.ThawReport
	// SetError says why not every volume was snapshotted; nil when all were.
	SetError error
}

// Verdict is what the set may be tagged.
type Verdict struct {
	Consistency string // contract.ConsistencyApplication or ConsistencyCrash
	// Notes say why the set is crash, one reason each; empty for application.
	Notes []string
	// Incomplete: not every volume's snapshot is acknowledged; never restore
	// the set as consistent (quiesce:incomplete=true).
	Incomplete bool
}

// Note is the notes joined, as quiesce:note and consistency_note carry them.
func (v Verdict) Note() string { return strings.Join(v.Notes, "; ") }

// UnacknowledgedNote is the note on a snapshot nobody acknowledged to the Lambda.
const UnacknowledgedNote = "created by a snapshot call whose response was lost; not part of the acknowledged set"

// Unacknowledged is the verdict on a snapshot created by a call whose
// response was lost (found afterwards by its tags), whatever the set's.
func Unacknowledged() Verdict {
	return Verdict{Consistency: contract.ConsistencyCrash, Notes: []string{UnacknowledgedNote}, Incomplete: true}
}

// rule is one condition of the verdict: it returns the note when the
// evidence breaks it.
type rule func(ev Evidence) (note string, broken bool)

// beforeCall are the rules decidable before the snapshot call, afterThaw
// the ones that need its outcome and the ThawReport; in the order their
// notes appear.
var (
	beforeCall = []rule{lockAsAsked, callInTime}
	afterThaw  = []rule{returnedInTime, thawConfirmed, heldUntilThaw, lockKept, setComplete}
)

// Decide is the verdict on the evidence.
func Decide(ev Evidence) Verdict {
	rules := beforeCall
	if ev.AfterThaw {
		rules = append(append([]rule(nil), beforeCall...), afterThaw...)
	}
	v := Verdict{Consistency: contract.ConsistencyApplication}
	for _, r := range rules {
		if note, broken := r(ev); broken {
			v.Notes = append(v.Notes, note)
		}
	}
	if len(v.Notes) > 0 {
		v.Consistency = contract.ConsistencyCrash
	}
	v.Incomplete = ev.AfterThaw && ev.SetError != nil
	return v
}

func (ev Evidence) freezeDeadline() time.Time { return ev.FreezeSent.Add(ev.FreezeTimeout) }

// lockAsAsked: the lock hostagent holds is the one asked for. auto resolves
// to a lock when MySQL is present and to none when there is no database:
// both are what the operator asked for.
func lockAsAsked(ev Evidence) (string, bool) {
	req, got := ev.LockRequested, ev.LockTaken
	switch {
	case req == contract.LockAuto || req == "" || req == contract.LockNone || got == req:
		return "", false
	case got == "" || got == contract.LockNone:
		return fmt.Sprintf("MySQL lock %s was requested but hostagent reports none", req), true
	}
	return fmt.Sprintf("MySQL lock %s was requested but hostagent took %s", req, got), true
}

func callInTime(ev Evidence) (string, bool) {
	return "freeze deadline passed before the snapshot call", !ev.CallsStarted.Before(ev.freezeDeadline())
}

func returnedInTime(ev Evidence) (string, bool) {
	late := ev.CallsReturned.Sub(ev.freezeDeadline())
	return fmt.Sprintf("snapshot call returned %s after freeze_timeout %s", late.Round(time.Millisecond), ev.FreezeTimeout), late > 0
}

func thawConfirmed(ev Evidence) (string, bool) {
	return "thaw not confirmed", ev.Thaw == nil
}

// heldUntilThaw: our thaw ended the hold, or hostagent's deadline did after
// it (a late thaw: the calls returned in time, checked by returnedInTime).
// A hold ended otherwise (recovery after a holder died) is not trusted.
func heldUntilThaw(ev Evidence) (string, bool) {
	tr := ev.Thaw
	if tr == nil || tr.Late || tr.ThawedBy == contract.ThawedByCommand {
		return "", false
	}
	return "hold ended by " + tr.ThawedBy + ", not by our thaw", true
}

// lockKept: the MySQL lock lasted until the thaw. When its connection died
// during the hold, writes may have reached the data files the freeze had not
// yet blocked, and the binlog position no longer describes the snapshot.
func lockKept(ev Evidence) (string, bool) {
	if ev.Thaw == nil || ev.Thaw.LockLost == nil {
		return "", false
	}
	ll := ev.Thaw.LockLost
	after := time.Duration(ll.AfterMS * float64(time.Millisecond)).Round(time.Millisecond)
	return fmt.Sprintf("MySQL lock lost %s into the hold: %s", after, ll.Reason), true
}

func setComplete(ev Evidence) (string, bool) {
	if ev.SetError == nil {
		return "", false
	}
	return "incomplete set: " + ev.SetError.Error(), true
}
