// Command hostagent locks MySQL/MariaDB and freezes filesystems for an
// application-consistent EBS snapshot, holds them under a hard deadline, and
// thaws them. DESIGN.md ("hostagent") is the contract: subcommands freeze,
// thaw, status, check and version, one JSON object on stdout, exit codes 0-5.
//
// Beyond the contract:
//
//   - State lives in /run/quiesce (override: --state-dir or $QUIESCE_STATE_DIR,
//     meant for tests): active runs as <run-id>.json, finished ones under done/
//     (kept 24 h so thaw stays idempotent), a log per run (<run-id>.log, written
//     by the holder and guardian), and the holder's unix socket.
//   - freeze --expedite-rcu (default true) switches /sys/kernel/rcu_expedited on
//     for the few milliseconds of the FIFREEZE calls, when it was off.
//   - Hidden subcommands: __holder and __guardian (the detached processes of a
//     hold, started by freeze) and recover [--run-id ID] (thaws stale runs; the
//     systemd timer armed by freeze runs it one second after the deadline).
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
