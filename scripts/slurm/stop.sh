#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by start.sh.
#
# Only the daemons that start.sh itself started (recorded in /run/assay-slurm/started) are
# stopped, each by the pid in its pid file, in the reverse of the start order. Jobs still in the
# queue are cancelled first, while slurmctld and slurmd still run: stopping slurmd does not kill
# running jobs, and their processes would otherwise stay behind.
set -euo pipefail

STATE_DIR=/run/assay-slurm
STARTED_FILE="$STATE_DIR/started"
TIMEOUT="${SLURM_TIMEOUT:-30}"

t0=$(date +%s%N)
say() {
  local ms=$((($(date +%s%N) - t0) / 1000000))
  printf '[slurm stop %3d.%01ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}

[ "$(id -u)" -eq 0 ] || {
  echo "[slurm stop] ERROR: must run as root" >&2
  exit 1
}
if [ ! -s "$STARTED_FILE" ]; then
  say "nothing to stop: start.sh started no daemon (no $STARTED_FILE)"
  exit 0
fi

started() { grep -qx "$1" "$STARTED_FILE"; }

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
  sed -i "/^$name\$/d" "$STARTED_FILE"
}

status=0
stop_one slurmd /run/slurm/slurmd.pid || status=1
stop_one slurmctld /run/slurm/slurmctld.pid || status=1
stop_one slurmdbd /run/slurm/slurmdbd.pid || status=1
stop_one mariadbd /run/mysqld/mysqld.pid || status=1
stop_one munged /run/munge/munged.pid || status=1
[ -s "$STARTED_FILE" ] || rm -f "$STARTED_FILE"
exit "$status"
