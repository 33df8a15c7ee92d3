package verify

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/orchestrate"
)

func parse(t *testing.T, raw string, env map[string]string) (*Config, error) {
	t.Helper()
	ev := &event.Config{Stack: "st", Action: event.ActionVerify, Verify: json.RawMessage(raw), RunID: "generated"}
	return ParseConfig(ev, func(k string) string { return env[k] })
}

func TestParseConfigDefaultsAndEnvironment(t *testing.T) {
	c, err := parse(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Document != DefaultDocument || c.VerifierTag != "verifier" || c.Every != 24*time.Hour || c.MaxDuration != 6*time.Hour || c.RunID != "" {
		t.Fatalf("defaults = %+v", c)
	}
	env := map[string]string{"QUIESCE_VERIFY_DOCUMENT": "st-Verify", "QUIESCE_VERIFIER_TAG_VALUE": "v2", "QUIESCE_VERIFY_EVERY": "7d",
		"QUIESCE_VERIFY_MAX_HOURS": "12", "QUIESCE_VERIFY_CHECK_SQL": "/etc/q/v.sql"}
	c, err = parse(t, `{"every":"0","check_sql":"/etc/q/other.sql"}`, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Document != "st-Verify" || c.VerifierTag != "v2" || c.Every != 0 || c.MaxDuration != 12*time.Hour || c.CheckSQL != "/etc/q/other.sql" {
		t.Fatalf("event over environment = %+v", c)
	}
}

func TestParseConfigNamesTheBadValue(t *testing.T) {
	for raw, want := range map[string]string{
		`{"max_hours":0}`:                   `verify.max_hours "0": must be between 1 and 48 hours`,
		`{"max_hours":49}`:                  `verify.max_hours "49"`,
		`{"every":"soon"}`:                  `verify.every "soon"`,
		`{"every":"-1h"}`:                   `verify.every "-1h"`,
		`{"check_sql":"etc/v.sql"}`:         `verify.check_sql "etc/v.sql"`,
		`{"mysqld":"/usr/sbin/mysqld;id"}`:  `verify.mysqld "/usr/sbin/mysqld;id"`,
		`{"verifier_tag":"a\"b"}`:           `verify.verifier_tag "a\"b"`,
		`{"verifier":"x"}`:                  `unknown field "verifier"`,
		`{"mysqld_options_file":"/a/../b"}`: `verify.mysqld_options_file "/a/../b"`,
	} {
		_, err := parse(t, raw, nil)
		var ve *event.ValidationError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want a ValidationError containing %q", raw, err, want)
		}
	}
}

func TestFreeDevicesSkipsUsedAttachmentPoints(t *testing.T) {
	got := freeDevices([]string{"/dev/xvda", "/dev/xvdf", "/dev/sdh", "/dev/sdp"})
	want := "/dev/sdg,/dev/sdi,/dev/sdj,/dev/sdk,/dev/sdl,/dev/sdm,/dev/sdn,/dev/sdo"
	if strings.Join(got, ",") != want {
		t.Fatalf("free = %v, want %s", got, want)
	}
}

// The keys this action reads are ones the snapshot run writes (it writes
// only the keys contract.SnapshotTagKeys reserves), and a set it verifies is
// one the run tags application-consistent.
func TestTagKeysMatchTheOrchestrator(t *testing.T) {
	for _, mine := range []string{contract.TagStack, contract.TagRunID, contract.TagInstance, contract.TagDevice, contract.TagConsistency, contract.TagIncomplete, contract.TagBinlogFile, contract.TagBinlogPos, contract.TagGTID} {
		if !slices.Contains(contract.SnapshotTagKeys[:], mine) {
			t.Errorf("verify reads %q, which the snapshot run does not write", mine)
		}
	}
	if contract.ConsistencyApplication != string(orchestrate.Application) {
		t.Errorf("verify takes sets tagged %q, the snapshot run tags %q", contract.ConsistencyApplication, orchestrate.Application)
	}
}
