// Command hostagent locks MySQL/MariaDB and freezes filesystems for an
// application-consistent EBS snapshot, holds them under a hard deadline, and
// thaws them: subcommands freeze, thaw, status, check and version; verify and
// clone, which work on a restored snapshot set
// (docs/architecture.md#restore-verification); and the hidden ones below. One
// JSON object on stdout, the exit codes of docs/architecture.md#exit-codes.
// How the hold works: docs/architecture.md#the-hold-and-its-deadline.
//
// Details:
//
//   - State lives in /run/quiesce (override: --state-dir or $QUIESCE_STATE_DIR,
//     meant for tests): active runs as <run-id>.json (and a redundant copy,
//     <run-id>.json.copy, that thaw and recovery fall back to when the record
//     is unreadable), finished ones under done/
//     (kept 24 h so thaw stays idempotent), a log per run (<run-id>.log, written
//     by the holder and guardian), and the holder's unix socket.
//   - freeze --expedite-rcu (default on; --expedite-rcu=false opts out)
//     switches the machine-wide /sys/kernel/rcu_expedited on for the few
//     milliseconds of the FIFREEZE calls, when it was off. Most of a
//     FIFREEZE's ~40 ms is the kernel waiting for normal RCU grace periods
//     with every writer already blocked; expedited, the freeze takes ~3 ms
//     (measured side by side in BenchmarkFreezeThawCycle*). The run's state
//     records that it must be switched back, so the guardian (as soon as the
//     holder dies, and at the deadline), a thaw or recovery restores it.
//     On by default because the write-blocked window is what every user
//     pays for, while the cost is a few inter-processor interrupts during
//     those milliseconds. Opt out where isolated/realtime cores must never
//     see an IPI, or where something else manages the setting (a restore
//     could undo a change made during the freeze's milliseconds); with
//     holder AND guardian killed mid-freeze it stays on until the next
//     hostagent invocation or the systemd timer, as the mounts would.
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
