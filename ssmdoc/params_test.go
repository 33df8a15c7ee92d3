package ssmdoc_test

import (
	"slices"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
)

// Every parameter contract.CommandParams renders must be declared by the
// Quiesce document (SSM refuses SendCommand with an undeclared parameter)
// and pass its allowedValues/allowedPattern; freeze and check must render
// every declared parameter, so none is left to the document's default.
func TestCommandParamsMatchTheDocument(t *testing.T) {
	doc := mustLoad(t, "Quiesce") // parses ssmdoc/quiesce-command.yaml
	full := contract.CommandParams{RunID: "20261125T194500Z-a1b2c3", FreezeRequest: contract.FreezeRequest{
		Mounts: []string{"/var/lib/mysql", "/var/lib/mysql-binlog"}, MySQLLock: contract.LockBackupStage, MySQLDefaultsFile: "/etc/quiesce/my.cnf",
		LockWait: 1500 * time.Millisecond, LongQueryLimit: 90 * time.Second, KillLongQueries: true}, Timeout: contract.MaxFreezeTimeout}
	for _, action := range []string{contract.ActionFreeze, contract.ActionCheck, contract.ActionThaw, contract.ActionStatus} {
		p := full
		p.Action = action
		rendered := p.Parameters()
		for name, values := range rendered {
			if len(values) != 1 {
				t.Errorf("%s: parameter %s has %d values, the document takes one", action, name, len(values))
				continue
			}
			if err := doc.Validate(name, values[0]); err != nil {
				t.Errorf("%s: %v", action, err)
			}
		}
		if action != contract.ActionFreeze && action != contract.ActionCheck {
			continue
		}
		for _, name := range doc.ParameterNames() {
			if _, ok := rendered[name]; !ok {
				t.Errorf("%s: the document declares %s, contract.CommandParams never sends it", action, name)
			}
		}
	}
}

// The values both sides list must be the document's own.
func TestContractValuesMatchTheDocument(t *testing.T) {
	doc := mustLoad(t, "Quiesce")
	if got, want := doc.Parameters[contract.ParamMySQLLock].AllowedValues, contract.LockModes(); !slices.Equal(got, want) {
		t.Errorf("mysqlLock allowedValues = %v, contract.LockModes() = %v", got, want)
	}
	actions := []string{contract.ActionFreeze, contract.ActionThaw, contract.ActionCheck, contract.ActionStatus}
	if got := doc.Parameters[contract.ParamAction].AllowedValues; !slices.Equal(got, actions) {
		t.Errorf("action allowedValues = %v, contract's actions = %v", got, actions)
	}
	if got, want := doc.Parameters[contract.ParamRunID].AllowedPattern, "^$|"+contract.RunIDPattern; got != want {
		t.Errorf("runId allowedPattern = %q, want %q", got, want)
	}
	if got := doc.Parameters[contract.ParamTimeout].Default; got == nil || *got != contract.DefaultFreezeTimeout.String() {
		t.Errorf("timeout default = %v, want %s", got, contract.DefaultFreezeTimeout)
	}
	// The bounds hostagent enforces are the ones the pattern lets through.
	for _, d := range []time.Duration{contract.MinFreezeTimeout, contract.MaxFreezeTimeout} {
		if err := doc.Validate(contract.ParamTimeout, d.String()); err != nil {
			t.Errorf("timeout bound %s: %v", d, err)
		}
	}
}
