package event

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quiesce/quiesce/contract"
)

var now = time.Date(2026, 11, 25, 19, 45, 0, 0, time.UTC)

func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

var fullEnv = envOf("QUIESCE_STACK", "prod-db", "QUIESCE_TARGET_TAG_KEY", "quiesce:enabled", "QUIESCE_TARGET_TAG_VALUE", "true",
	"QUIESCE_MOUNTS", "/var/lib/mysql, /var/lib/mysql-binlog", "QUIESCE_MYSQL_LOCK", "backup-stage", "QUIESCE_MYSQL_DEFAULTS_FILE", "/etc/quiesce/my.cnf",
	"QUIESCE_FREEZE_TIMEOUT", "20s", "QUIESCE_KEEP_LAST", "14", "QUIESCE_MAX_AGE", "30d", "QUIESCE_MAX_CONCURRENCY", "4", "QUIESCE_DOCUMENT", "prod-Quiesce")

func TestScheduledEventsUseEnvironment(t *testing.T) {
	for name, raw := range map[string]string{
		"empty":            "",
		"null":             "null",
		"{}":               "{}",
		"eventbridge rule": `{"version":"0","id":"89d1a02d","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-11-25T19:45:00Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:123456789012:rule/x"],"detail":{}}`,
		"scheduler":        `{"source":"aws.scheduler","detail-type":"Scheduled Event","detail":"{}"}`,
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse([]byte(raw), fullEnv, now)
			if err != nil {
				t.Fatal(err)
			}
			if !cfg.Scheduled || cfg.Stack != "prod-db" || cfg.Document != "prod-Quiesce" || cfg.TargetTags["quiesce:enabled"] != "true" ||
				strings.Join(cfg.Mounts, ",") != "/var/lib/mysql,/var/lib/mysql-binlog" || cfg.MySQLLock != "backup-stage" ||
				cfg.MySQLDefaultsFile != "/etc/quiesce/my.cnf" || cfg.FreezeTimeout != 20*time.Second || cfg.KeepLast != 14 ||
				cfg.MaxAge != 30*24*time.Hour || cfg.MaxConcurrency != 4 || !strings.HasPrefix(cfg.RunID, "20261125T194500Z-") {
				t.Fatalf("cfg = %+v", cfg)
			}
		})
	}
}

func TestEventOverridesEnvironment(t *testing.T) {
	raw := `{"targets":{"instance_ids":["i-0123456789abcdef0"],"tags":{"quiesce:enabled":"true"}},
	 "mounts":["/var/lib/mysql"], "mysql":{"lock":"auto","defaults_file":"/etc/quiesce/my.cnf","lock_wait":"2s","long_query_limit":"30s","kill_long_queries":true},
	 "freeze_timeout":"30s", "snapshot_tags":{"team":"db"}, "retention":{"keep_last":7,"max_age":"720h"},
	 "max_concurrency":10, "dry_run":true, "run_id":"manual-1"}`
	cfg, err := Parse([]byte(raw), fullEnv, now)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Scheduled || cfg.RunID != "manual-1" || len(cfg.InstanceIDs) != 1 || cfg.MySQLLock != "auto" || cfg.LockWait != 2*time.Second ||
		cfg.LongQueryLimit != 30*time.Second || !cfg.KillLongQueries || cfg.KeepLast != 7 || cfg.MaxAge != 720*time.Hour || !cfg.DryRun ||
		cfg.MaxConcurrency != 10 || cfg.SnapshotTags["team"] != "db" || strings.Join(cfg.Mounts, ",") != "/var/lib/mysql" {
		t.Fatalf("cfg = %+v", cfg)
	}
}

func TestValidationNamesTheField(t *testing.T) {
	base := envOf("QUIESCE_STACK", "s", "QUIESCE_TARGET_TAG_KEY", "quiesce:enabled", "QUIESCE_TARGET_TAG_VALUE", "true", "QUIESCE_MOUNTS", "/data")
	tests := []struct {
		name, raw string
		env       func(string) string
		want      string
	}{
		{"freeze timeout zero", `{"freeze_timeout":"0s"}`, base, `freeze_timeout "0s": must be between 1s and 10m`},
		{"freeze timeout too long", `{"freeze_timeout":"11m"}`, base, `freeze_timeout "11m": must be between 1s and 10m`},
		{"freeze timeout garbage", `{"freeze_timeout":"soon"}`, base, `freeze_timeout "soon": not a duration`},
		{"env freeze timeout", `{}`, envOf("QUIESCE_STACK", "s", "QUIESCE_TARGET_TAG_KEY", "k", "QUIESCE_MOUNTS", "/data", "QUIESCE_FREEZE_TIMEOUT", "500ms"), `QUIESCE_FREEZE_TIMEOUT "500ms": must be between 1s and 10m`},
		{"unknown field", `{"mount":["/data"]}`, base, `unknown field "mount"`},
		{"wrong type", `{"max_concurrency":"ten"}`, base, `max_concurrency: expected int`},
		{"relative mount", `{"mounts":["var/lib/mysql"]}`, base, `mounts[0] "var/lib/mysql": must be an absolute path`},
		{"mount with space", `{"mounts":["/var/lib/my sql"]}`, base, `mounts[0] "/var/lib/my sql"`},
		{"mount injection", `{"mounts":["/data;reboot"]}`, base, `mounts[0] "/data;reboot"`},
		{"root mount", `{"mounts":["/"]}`, base, `mounts[0] "/"`},
		{"duplicate mount", `{"mounts":["/data","/data"]}`, base, `mounts[1] "/data": listed twice`},
		{"lock", `{"mysql":{"lock":"global"}}`, base, `mysql.lock "global": must be one of auto|ftwrl|backup-stage|instance|replica|none`},
		{"defaults file", `{"mysql":{"defaults_file":"my.cnf"}}`, base, `mysql.defaults_file "my.cnf"`},
		{"instance id", `{"targets":{"instance_ids":["web-1"]}}`, base, `targets.instance_ids[0] "web-1": not an EC2 instance ID`},
		{"no targets", `{"mounts":["/data"]}`, envOf("QUIESCE_STACK", "s"), `targets: required`},
		{"no stack", `{}`, envOf(), `QUIESCE_STACK: required`},
		{"aws tag", `{"snapshot_tags":{"aws:backup":"x"}}`, base, `snapshot_tags "aws:backup": tag keys starting with aws: are reserved`},
		{"quiesce tag", `{"snapshot_tags":{"quiesce:consistency":"application"}}`, base, `snapshot_tags "quiesce:consistency": tag keys starting with quiesce: are reserved`},
		{"long tag value", `{"snapshot_tags":{"k":"` + strings.Repeat("v", 257) + `"}}`, base, `snapshot_tags.k`},
		{"keep_last", `{"retention":{"keep_last":-1}}`, base, `retention.keep_last "-1"`},
		{"max_age", `{"retention":{"max_age":"5m"}}`, base, `retention.max_age "5m": must be a duration of at least 1h`},
		{"env keep", `{}`, envOf("QUIESCE_STACK", "s", "QUIESCE_TARGET_TAG_KEY", "k", "QUIESCE_KEEP_LAST", "many"), `QUIESCE_KEEP_LAST "many"`},
		{"concurrency", `{"max_concurrency":0}`, base, `max_concurrency "0": must be between 1 and 100`},
		{"run id", `{"run_id":"has space"}`, base, `run_id "has space"`},
		{"not an object", `[1,2]`, base, `event: not a JSON object`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.raw), tt.env, now)
			var ve *ValidationError
			if err == nil || !errors.As(err, &ve) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ValidationError containing %q", err, tt.want)
			}
		})
	}
}

// Every lock mode of the contract is accepted, replica included (hostagent
// takes it only when asked: auto never picks it).
func TestEveryLockModeAccepted(t *testing.T) {
	if !slices.Contains(LockModes, contract.LockReplica) {
		t.Fatalf("LockModes %v lacks %s", LockModes, contract.LockReplica)
	}
	env := envOf("QUIESCE_STACK", "s", "QUIESCE_TARGET_TAG_KEY", "quiesce:enabled", "QUIESCE_MOUNTS", "/data")
	for _, m := range LockModes {
		cfg, err := Parse([]byte(`{"mysql":{"lock":"`+m+`"}}`), env, now)
		if err != nil || cfg.MySQLLock != m {
			t.Errorf("mysql.lock %q: cfg %+v, err %v", m, cfg, err)
		}
	}
	cfg, err := Parse([]byte(`{}`), envOf("QUIESCE_STACK", "s", "QUIESCE_TARGET_TAG_KEY", "k", "QUIESCE_MOUNTS", "/data", "QUIESCE_MYSQL_LOCK", "replica"), now)
	if err != nil || cfg.MySQLLock != contract.LockReplica {
		t.Errorf("QUIESCE_MYSQL_LOCK=replica: cfg %+v, err %v", cfg, err)
	}
}

func TestTooManyUserTags(t *testing.T) {
	tags := map[string]string{}
	for i := 0; i <= MaxUserTags; i++ {
		tags[strings.Repeat("k", i+1)] = "v"
	}
	// Every key quiesce may write on a snapshot (the verify verdict included,
	// written later by CreateTags) is reserved from EC2's 50.
	want := fmt.Sprintf("at most %d user tags", 50-len(contract.SnapshotTagKeys))
	if err := ValidateUserTags(tags); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v", err)
	}
	delete(tags, "k")
	if err := ValidateUserTags(tags); err != nil {
		t.Fatal(err)
	}
}

func TestRunIDMatchesDocumentPattern(t *testing.T) {
	id := NewRunID(now)
	if !regexp.MustCompile(contract.RunIDPattern).MatchString(id) || NewRunID(now) == id {
		t.Fatalf("run id %q", id)
	}
}

func TestAction(t *testing.T) {
	env := envOf("QUIESCE_STACK", "prod-db")
	for _, tc := range []struct {
		raw, action, err string
		runIDGiven       bool
		verify           string
	}{
		{raw: `{"targets":{"instance_ids":["i-0123456789abcdef0"]}}`, action: ActionSnapshot},
		{raw: `{"action":"snapshot","targets":{"instance_ids":["i-0123456789abcdef0"]}}`, action: ActionSnapshot},
		{raw: `{"action":"verify","run_id":"r1","targets":{"tags":{"a":"b"}},"verify":{"every":"24h"}}`, action: ActionVerify, runIDGiven: true, verify: `{"every":"24h"}`},
		{raw: `{"action":"restore","targets":{"tags":{"a":"b"}}}`, err: `action "restore": must be snapshot, verify or clone`},
		{raw: `{"targets":{"tags":{"a":"b"}},"verify":{}}`, err: `verify: only with "action":"verify"`},
		{raw: `{"action":"clone","run_id":"r1","clone":{"target_instance":"i-1"}}`, action: ActionClone, runIDGiven: true},
		{raw: `{"targets":{"tags":{"a":"b"}},"clone":{}}`, err: `clone: only with "action":"clone"`},
	} {
		cfg, err := Parse([]byte(tc.raw), env, now)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: error %v, want %q", tc.raw, err, tc.err)
			}
			continue
		}
		if err != nil || cfg.Action != tc.action || cfg.RunIDGiven != tc.runIDGiven || string(cfg.Verify) != tc.verify {
			t.Errorf("%s: %+v, %v", tc.raw, cfg, err)
		}
	}
}

// The duration forms operators write (days included) and the form error
// messages print limits in.
func TestParseAndHumanDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "0d": 0, "90s": 90 * time.Second, "1h30m": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1d", "xd", "soon", ""} {
		if got, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", bad, got)
		}
	}
	for d, want := range map[time.Duration]string{10 * time.Minute: "10m", 2 * time.Hour: "2h", 90 * time.Second: "1m30s", 500 * time.Millisecond: "500ms",
		6 * time.Hour: "6h", 90 * time.Minute: "1h30m", 5 * time.Minute: "5m", 30 * time.Second: "30s"} {
		if got := HumanDuration(d); got != want {
			t.Errorf("HumanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
