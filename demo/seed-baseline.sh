#!/usr/bin/env bash
# The seed's snapshot recipe, as a baseline for `demo bench` (one cycle per run):
#
#   FLUSH TABLES WITH READ LOCK   held open in a `mariadb` client session
#   xfs_freeze -f MOUNT
#   the snapshot copy             (cp --reflink=always, as the demo's stand-in does)
#   xfs_freeze -u MOUNT
#   UNLOCK TABLES                 (then the session ends)
#
# usage: seed-baseline.sh --defaults-file F --mount M --source IMG --dest IMG [--timeout SECONDS]
#
# Prints one line of key=value timings in milliseconds (lock, freeze, copy, thaw,
# unlock, window = lock sent → unlocked) plus start_us/end_us (epoch µs) so the
# caller can line them up with its writer's commits. On any failure or signal
# the trap thaws the mount and ends the session (which releases the lock).
#
# One addition to the seed's recipe so a benchmark cannot hang: FTWRL is given
# --timeout seconds. A FLUSH TABLES WITH READ LOCK that is still waiting is not
# withdrawn by closing the client (the server only notices at its next socket
# read), so on timeout the trap KILLs the session's connection by id.
set -euo pipefail

defaults="" mount="" src="" dst="" timeout=30
while [ $# -gt 0 ]; do
  case "$1" in
    --defaults-file) defaults="$2"; shift 2 ;;
    --mount)         mount="$2"; shift 2 ;;
    --source)        src="$2"; shift 2 ;;
    --dest)          dst="$2"; shift 2 ;;
    --timeout)       timeout="$2"; shift 2 ;;
    *) echo "seed-baseline: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$defaults" ] || { echo "seed-baseline: --defaults-file is required" >&2; exit 2; }
[ -n "$mount" ] || { echo "seed-baseline: --mount is required" >&2; exit 2; }
[ -n "$src" ] || { echo "seed-baseline: --source is required" >&2; exit 2; }
[ -n "$dst" ] || { echo "seed-baseline: --dest is required" >&2; exit 2; }
[ "$dst" != "${dst#-}" ] && { echo "seed-baseline: bad --dest $dst" >&2; exit 2; }
mountpoint -q "$mount" || { echo "seed-baseline: $mount is not a mount point" >&2; exit 2; }

client=mariadb
command -v "$client" >/dev/null 2>&1 || client=mysql
export PATH="$PATH:/usr/sbin:/sbin"

us() { local t=${EPOCHREALTIME/./}; echo "$t"; }  # epoch microseconds (bash ≥ 5)
ms_between() { echo "$(( ($2 - $1) / 1000 )).$(( (($2 - $1) % 1000) / 100 ))"; }

frozen=0
session_open=0
conn_id=""
locked=0
cleanup() {
  local rc=$?
  if [ "$frozen" = 1 ]; then xfs_freeze -u "$mount" || true; fi
  if [ "$session_open" = 1 ] && [ "$locked" = 0 ] && [ -n "$conn_id" ] && [ "$rc" != 0 ]; then
    # FTWRL may still be queued in the server: withdraw it.
    timeout 10 "$client" --defaults-file="$defaults" -e "KILL $conn_id" >/dev/null 2>&1 || true
  fi
  if [ "$session_open" = 1 ]; then
    exec {to_client}>&- 2>/dev/null || true     # EOF: the client exits, the lock goes with it
    kill "$client_pid" 2>/dev/null || true
    wait "$client_pid" 2>/dev/null || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The client session that holds the lock: its stdin is a pipe we keep open.
coproc SQL { exec "$client" --defaults-file="$defaults" --batch --skip-column-names --unbuffered 2>&1; }
client_pid=$SQL_PID
exec {to_client}>&"${SQL[1]}" {from_client}<&"${SQL[0]}"
session_open=1

expect() { # wait for a marker line from the session, bounded
  local want=$1 line
  while IFS= read -r -t "$timeout" line <&"$from_client"; do
    [ "$line" = "$want" ] && return 0
    echo "seed-baseline: mariadb: $line" >&2
  done
  echo "seed-baseline: no '$want' from the mariadb session within ${timeout}s" >&2
  return 1
}

echo "SELECT CONNECTION_ID();" >&"$to_client"
IFS= read -r -t "$timeout" conn_id <&"$from_client" || { echo "seed-baseline: mariadb session did not answer" >&2; exit 1; }
case "$conn_id" in *[!0-9]*|"") echo "seed-baseline: mariadb: $conn_id" >&2; exit 1 ;; esac

t0=$(us)
echo "FLUSH TABLES WITH READ LOCK; SELECT 'locked';" >&"$to_client"
expect locked
locked=1
t1=$(us)
xfs_freeze -f "$mount"
frozen=1
t2=$(us)
cp --reflink=always "$src" "$dst"
t3=$(us)
xfs_freeze -u "$mount"
frozen=0
t4=$(us)
echo "UNLOCK TABLES; SELECT 'unlocked';" >&"$to_client"
expect unlocked
t5=$(us)

echo "lock_ms=$(ms_between "$t0" "$t1") freeze_ms=$(ms_between "$t1" "$t2") copy_ms=$(ms_between "$t2" "$t3") thaw_ms=$(ms_between "$t3" "$t4") unlock_ms=$(ms_between "$t4" "$t5") window_ms=$(ms_between "$t0" "$t5") start_us=$t0 end_us=$t5"
