package contract

import (
	"strconv"
	"strings"
	"time"
)

// Actions of the Quiesce SSM document (its action parameter).
const (
	ActionFreeze = "freeze"
	ActionThaw   = "thaw"
	ActionCheck  = "check"
	ActionStatus = "status"
)

// CommandParams are the parameters of the Quiesce SSM document
// (ssmdoc/quiesce-command.yaml), typed. ssmdoc's tests parse that document
// and check that every parameter Parameters renders is declared there and
// passes its allowedValues/allowedPattern.
type CommandParams struct {
	Action string
	RunID  string
	// The rest is used by freeze and check only.
	FreezeRequest
	Timeout time.Duration
}

// FreezeRequest is what a freeze (or check) asks of the host besides its run
// id and timeout: the mounts, the lock mode and the lock's bounds. The event
// gives one for every target (event.Config); a target's own tags may name
// its mounts and lock mode instead.
type FreezeRequest struct {
	Mounts            []string
	MySQLLock         string
	MySQLDefaultsFile string
	LockWait          time.Duration
	LongQueryLimit    time.Duration
	KillLongQueries   bool
}

// Parameter names of the document.
const (
	ParamAction            = "action"
	ParamRunID             = "runId"
	ParamMounts            = "mounts"
	ParamMySQLLock         = "mysqlLock"
	ParamMySQLDefaultsFile = "mysqlDefaultsFile"
	ParamLockWait          = "lockWait"
	ParamLongQueryLimit    = "longQueryLimit"
	ParamKillLongQueries   = "killLongQueries"
	ParamTimeout           = "timeout"
)

// Parameters renders p as SendCommand's Parameters. thaw and status send
// only the action and the run id; freeze and check send every parameter, so
// a value the document would default is never left to the document.
func (p CommandParams) Parameters() map[string][]string {
	out := map[string][]string{ParamAction: {p.Action}, ParamRunID: {p.RunID}}
	if p.Action != ActionFreeze && p.Action != ActionCheck {
		return out
	}
	for k, v := range map[string]string{
		ParamMounts:            strings.Join(p.Mounts, ","),
		ParamMySQLLock:         p.MySQLLock,
		ParamMySQLDefaultsFile: p.MySQLDefaultsFile,
		ParamLockWait:          p.LockWait.String(),
		ParamLongQueryLimit:    p.LongQueryLimit.String(),
		ParamKillLongQueries:   strconv.FormatBool(p.KillLongQueries),
		ParamTimeout:           p.Timeout.String(),
	} {
		out[k] = []string{v}
	}
	return out
}

// SplitList reads a comma-separated list as the document's list parameters
// (mounts) and the servers' GTID states write it: elements trimmed of the
// spaces and newlines around them, empty ones dropped.
func SplitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}
