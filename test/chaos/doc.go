// Package chaos attacks hostagent's fail-safe with randomized faults: the
// real binary (built once by TestMain, or CHAOS_HOSTAGENT), real loop XFS
// and ext4 filesystems, a real mariadbd whose datadir is on the XFS, and one
// injected fault (or two) per case:
//
//   - kill-/stop-holder, kill-/stop-guardian, kill-/stop-client: SIGKILL, or
//     SIGSTOP and a later SIGCONT, early (as soon as the state dir names the
//     process) or during the hold; double: two of them at once, always
//     leaving one fail-safe layer alive;
//   - conn-kill: KILL of the lock's connection from a second connection;
//     mariadbd-kill: SIGKILL of the server (restarted for the next case);
//   - concurrent: two freezes of overlapping mounts at once; thaw-race: thaw
//     within ±40 ms of the deadline, sometimes twice at once;
//   - unreadable-state: the held run's record torn in the middle, then a
//     second freeze of its mounts and/or the holder killed;
//   - full-statedir: the state dir on a tiny tmpfs (few inodes and pages);
//   - stacked: an outer loop XFS and an inner loop filesystem whose image
//     lives on it, frozen together after unsynced writes to the inner one;
//     a bounded timer thaws both from outside after the deadline + 5 s.
//
// After every case, with bounded waits (check_test.go): nothing frozen past
// its limit + 250 ms (a FITHAW probe by the suite at that instant succeeds
// only on a frozen filesystem; a blocked writer on each mount gives the
// figure); MySQL takes a commit; no holder or guardian alive; after
// `hostagent status` no run starting/held, no active or unreadable record,
// no socket; reports true (a FreezeReport printed before its deadline and
// before any thaw, ErrorReport exit codes, thaw exit codes that match the
// report, no on-time thaw after the deadline, lock_lost whenever the suite
// killed the lock during the hold).
//
// A case's plan (category, mounts, lock mode, timeout, offsets) depends only
// on CHAOS_SEED and its index, so CHAOS_SEED=S CHAOS_ONLY=i replays case i of
// run S; the races it provokes may of course fall differently on a replay.
// `make chaos` runs 200 cases, the default `go test` 20 (8 with -short).
package chaos
