package orchestrate

import (
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/targets"
	"github.com/quiesce/quiesce/ssmdoc"
)

// The parameters the Lambda sends must pass the real SSM document's
// allowedValues/allowedPattern, for every value the event validation accepts.
func TestParametersPassTheSSMDocument(t *testing.T) {
	doc, err := ssmdoc.Quiesce()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		lock, defaults      string
		wait, limit, freeze time.Duration
		kill                bool
		mounts              []string
	}{
		{"auto", "", 5 * time.Second, 10 * time.Second, 30 * time.Second, false, []string{"/var/lib/mysql"}},
		{"backup-stage", "/etc/quiesce/my.cnf", 1500 * time.Millisecond, 90 * time.Second, 10 * time.Minute, true, []string{"/var/lib/mysql", "/var/lib/mysql-binlog", "/data/x_y.z-1"}},
		{"none", "", time.Millisecond, 24 * time.Hour, time.Second, false, []string{"/srv"}},
		{"instance", "/root/my.cnf", 10 * time.Minute, 1*time.Hour + 30*time.Minute + 15*time.Second, 90 * time.Second, false, []string{"/db"}},
	} {
		cfg := &event.Config{RunID: event.NewRunID(time.Now()), FreezeRequest: contract.FreezeRequest{MySQLDefaultsFile: tt.defaults, LockWait: tt.wait, LongQueryLimit: tt.limit, KillLongQueries: tt.kill}}
		tg := targets.Target{Mounts: tt.mounts, MySQLLock: tt.lock, FreezeTimeout: tt.freeze}
		freeze := freezeParams(cfg, tg)
		check := freezeParams(cfg, tg)
		check.Action = contract.ActionCheck
		for _, cp := range []contract.CommandParams{freeze, check, {Action: contract.ActionThaw, RunID: cfg.RunID}} {
			p := map[string]string{}
			for k, v := range cp.Parameters() {
				p[k] = v[0]
			}
			if _, _, err := doc.Render(p); err != nil {
				t.Errorf("params %v rejected by the document: %v", p, err)
			}
		}
	}
}
