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
//   - freeze --expedite-rcu (opt-in, default off) switches the machine-wide
//     /sys/kernel/rcu_expedited on for the few milliseconds of the FIFREEZE
//     calls (~40 ms → a few ms per freeze on HZ=100..250 kernels), when it was
//     off. The run's state records that it must be switched back, so the
//     guardian, a thaw or recovery restores it if the holder dies meanwhile.
//     Off by default: it is a global kernel setting (expedited grace periods
//     IPI every CPU, which isolated/realtime cores notice), a restore can undo
//     a change someone else made meanwhile, and with holder AND guardian
//     killed it stays on until the next hostagent invocation or the systemd
//     timer — the same fail-safe the mounts have, but an operator should
//     choose to take that on.
//   - Hidden subcommands: __holder and __guardian (the detached processes of a
//     hold, started by freeze) and recover [--run-id ID] (thaws stale runs; the
//     systemd timer armed by freeze runs it one second after the deadline),
//     and __probe-write DIR (a detached child that shows the state dir's
//     filesystem takes writes: on a frozen one every write would hang the
//     command unkillably, so it refuses with exit 3 instead; not run for
//     tmpfs/ramfs, which cannot be frozen).
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
