// Command bootstrap is the quiesce Lambda (provided.al2023, arm64): it
// resolves the target instances, freezes each through the SSM document,
// snapshots the volumes behind the frozen mounts, always thaws, tags what
// happened honestly and prunes old snapshots of its stack.
//
// # Input
//
// The event README's "Run it by hand" shows (manual invoke, SAM test event,
// EventBridge Scheduler input); unknown fields are rejected, every error names the field:
//
//	{"targets":{"instance_ids":["i-…"],"tags":{"quiesce:enabled":"true"}},
//	 "mounts":["/var/lib/mysql"],
//	 "mysql":{"lock":"auto","defaults_file":"/etc/quiesce/my.cnf",
//	          "lock_wait":"5s","long_query_limit":"10s","kill_long_queries":false},
//	 "freeze_timeout":"30s", "snapshot_tags":{"team":"db"},
//	 "retention":{"keep_last":14,"max_age":"720h"},
//	 "max_concurrency":10, "dry_run":false, "run_id":"optional"}
//
// A bare scheduled event (source aws.events / aws.scheduler) or {} uses the
// environment: QUIESCE_STACK (required; the function name if unset),
// QUIESCE_DOCUMENT (default Quiesce), QUIESCE_TARGET_TAG_KEY/_VALUE (an empty
// value matches any value), QUIESCE_MOUNTS (comma-separated),
// QUIESCE_MYSQL_LOCK, QUIESCE_MYSQL_DEFAULTS_FILE, QUIESCE_FREEZE_TIMEOUT,
// QUIESCE_KEEP_LAST, QUIESCE_MAX_AGE, QUIESCE_MAX_CONCURRENCY. Event fields
// override the environment. Targets by ID and by tag are a union; instance
// tags quiesce:mounts, quiesce:mysql-lock, quiesce:freeze-timeout override
// per instance.
//
// # Output
//
// The result JSON (run_id, per instance: status ok|failed|skipped, reason,
// window_ms on the host, lambda_window_ms, snapshot IDs, consistency, lock,
// thaw outcome, errors; retention). When any instance failed the invocation
// returns a RunError (errorType "RunError") whose message carries the result,
// so the failure alarm fires. Logs are JSON on stderr; CloudWatch EMF metric
// lines (namespace Quiesce, dimension Stack) on stdout.
//
// # Consistency
//
// quiesce:consistency=application only when the freeze (and the requested
// lock) held, every snapshot call returned within freeze_timeout of sending
// the freeze, and the thaw report says our thaw or, late, the deadline (never
// recovery) ended the hold with the lock kept throughout; otherwise crash,
// with quiesce:note saying why. See package consistency.
//
// # Verify
//
// {"action":"verify", "targets":{…}, "run_id":"optional",
// "verify":{"verifier_tag":"verifier","every":"24h","max_hours":6,"check_sql":"/etc/quiesce/verify.sql"}}
// restores each targeted instance's newest unverified application set on a
// verifier instance and checks it (package verify; README "Verify restores").
// The QUIESCE_VERIFY_* variables hold the defaults; QUIESCE_VERIFY_POLL
// (100ms to 10m, default 10s) is the pause between looks at a volume or the
// verify command (the local demo, whose volumes are ready at once, uses 200ms).
//
// # Clone
//
// {"action":"clone", "run_id":"optional",
// "clone":{"source_instance":"i-…","target_instance":"i-…","server_id":201}}
// makes the target a replica from the set (package clone; README "Clone a
// replica from a set"). QUIESCE_CLONE_DOCUMENT names the document.
//
// AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL_SSM point it at a local stand-in.
package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/quiesce/quiesce/internal/buildinfo"
	"github.com/quiesce/quiesce/internal/clock"
	"github.com/quiesce/quiesce/lambda/internal/clone"
	"github.com/quiesce/quiesce/lambda/internal/event"
	"github.com/quiesce/quiesce/lambda/internal/handler"
	"github.com/quiesce/quiesce/lambda/internal/metrics"
	"github.com/quiesce/quiesce/lambda/internal/orchestrate"
	"github.com/quiesce/quiesce/lambda/internal/verify"
)

func main() {
	// Logs as JSON on stderr; EMF metric lines on stdout (both reach CloudWatch Logs).
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("version", buildinfo.Version)
	ec2c, ssmc, err := handler.LoadClients(context.Background())
	if err != nil {
		log.Error("load AWS config", "error", err)
		os.Exit(1)
	}
	m := &metrics.Emitter{W: os.Stdout, Stack: event.StackFromEnv(os.Getenv)}
	v := verify.NewRunner(ec2c, ssmc, clock.Real{}, log, m)
	v.Poll = verifyPoll(os.Getenv("QUIESCE_VERIFY_POLL"), v.Poll, log)
	h := &handler.Handler{Runner: orchestrate.NewRunner(ec2c, ssmc, clock.Real{}, log, m),
		Verifier: v, Cloner: clone.NewRunner(ec2c, ssmc, clock.Real{}, log), Log: log}
	lambda.Start(h.Handle)
}

// verifyPoll reads QUIESCE_VERIFY_POLL; a bad value is logged and the default kept.
func verifyPoll(v string, def time.Duration, log *slog.Logger) time.Duration {
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 100*time.Millisecond || d > 10*time.Minute {
		log.Warn("QUIESCE_VERIFY_POLL must be a duration from 100ms to 10m; keeping the default", "value", v, "default", def.String())
		return def
	}
	return d
}
