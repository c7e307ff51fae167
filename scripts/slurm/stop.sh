#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by start.sh.
#
# Usage: stop.sh [--session TOKEN]
#   With --session, only the daemons that the start.sh run of that session started (listed in
#   /run/assay-slurm/sessions/TOKEN) are stopped; without it, every daemon any start.sh run started
#   (/run/assay-slurm/started). Daemons start.sh did not start are never touched.
#
# Each daemon is stopped by the pid in its pid file, in the reverse of the start order, and waited
# for until it is gone (a zombie counts as gone: it runs nothing, and only its parent can reap it).
# Jobs still in the queue are cancelled first, while slurmctld and slurmd still run: stopping
# slurmd does not kill running jobs, and their processes would otherwise stay behind.
set -euo pipefail

STATE_DIR=/run/assay-slurm
STARTED_FILE="$STATE_DIR/started"
TIMEOUT="${SLURM_TIMEOUT:-30}"
SESSION=""

t0=$(date +%s%N)
say() {
  local ms=$((($(date +%s%N) - t0) / 1000000))
  printf '[slurm stop %3d.%01ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}

die() {
  echo "[slurm stop] ERROR: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --session)
      [ $# -ge 2 ] && [ -n "$2" ] || die "--session needs the token that start.sh printed"
      SESSION=$2
      shift 2
      ;;
    *) die "unknown argument '$1' (usage: stop.sh [--session TOKEN])" ;;
  esac
done
case "$SESSION" in */* | .*) die "--session '$SESSION' is not a session token" ;; esac

[ "$(id -u)" -eq 0 ] || die "must run as root"

# LIST: the daemons to stop (this session's, or every session's).
if [ -n "$SESSION" ]; then
  LIST="$STATE_DIR/sessions/$SESSION"
  [ -f "$LIST" ] || die "no session '$SESSION' (no $LIST): it was stopped already, or never started"
else
  LIST="$STARTED_FILE"
fi
if [ ! -s "$LIST" ]; then
  say "nothing to stop: start.sh started no daemon${SESSION:+ in session $SESSION} ($LIST is empty or missing)"
  [ -z "$SESSION" ] || rm -f "$LIST"
  exit 0
fi

started() { grep -qx "$1" "$LIST"; }

# pid_of PIDFILE NAME: print the pid if the file names a live, non-zombie process called NAME.
# A zombie counts as stopped: where PID 1 reaps orphans slowly, it can linger for seconds.
pid_of() {
  local pidfile=$1 name=$2 pid
  [ -r "$pidfile" ] || return 1
  pid=$({ tr -dc '0-9' <"$pidfile"; } 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  echo "$pid"
}

# 1. Cancel the queue and wait until it is empty (about KillWait seconds for submitit jobs).
if started slurmctld && pid_of /run/slurm/slurmctld.pid slurmctld >/dev/null; then
  jobs=$(squeue -h -o %A 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    say "cancelling jobs: $(echo "$jobs" | tr '\n' ' ')"
    # shellcheck disable=SC2086  # one argument per job id
    scancel $jobs || true
    deadline=$(($(date +%s) + TIMEOUT))
    while [ -n "$(squeue -h -o %A 2>/dev/null)" ] && [ "$(date +%s)" -lt "$deadline" ]; do
      sleep 0.3
    done
  fi
fi

# 2. SIGTERM each daemon start.sh started, newest first, and wait for it to exit.
stop_one() {
  local name=$1 pidfile=$2 pid deadline
  started "$name" || return 0
  if ! pid=$(pid_of "$pidfile" "$name"); then
    say "$name is not running"
  else
    kill -TERM "$pid"
    deadline=$(($(date +%s) + TIMEOUT))
    while pid_of "$pidfile" "$name" >/dev/null; do
      if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "[slurm stop] ERROR: $name (pid $pid) did not exit within ${TIMEOUT}s" >&2
        return 1
      fi
      sleep 0.1
    done
    say "$name stopped (pid $pid)"
  fi
  # Forget it everywhere: in the list of all runs and in every session (a later session cannot
  # have started it again while it ran).
  sed -i "/^$name\$/d" "$STARTED_FILE" "$STATE_DIR"/sessions/* 2>/dev/null || true
}

status=0
stop_one slurmd /run/slurm/slurmd.pid || status=1
stop_one slurmctld /run/slurm/slurmctld.pid || status=1
stop_one slurmdbd /run/slurm/slurmdbd.pid || status=1
stop_one mariadbd /run/mysqld/mysqld.pid || status=1
stop_one munged /run/munge/munged.pid || status=1
[ -s "$STARTED_FILE" ] || rm -f "$STARTED_FILE"
[ -z "$SESSION" ] || [ "$status" -ne 0 ] || rm -f "$LIST"
exit "$status"
