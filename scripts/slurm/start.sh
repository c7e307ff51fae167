#!/usr/bin/env bash
# Start a real single-node Slurm cluster with accounting on this host (Debian 12, as root).
#
# Daemons: munged, mariadbd, slurmdbd, slurmctld, slurmd. The script is idempotent: it installs the
# Debian packages when they are missing, writes the configuration, starts only the daemons that are
# not already running, waits until each one answers, and ends with a smoke job (sbatch + srun) whose
# output it checks. Daemons it starts are recorded so that stop.sh stops exactly those.
#
# Usage: start.sh [--session-file FILE]
#   Each run is a session: the daemons it starts are listed under /run/assay-slurm/sessions/<token>,
#   and the token is printed (and written to FILE when given). `stop.sh --session TOKEN` stops only
#   what that run started.
#
# Settings (environment variables, all optional):
#   SLURM_CPUS     CPUs the node advertises (default: what `slurmd -C` reports). A higher value
#                  oversubscribes the host (SlurmdParameters=config_overrides), which lets more
#                  short test jobs run at once.
#   SLURM_TIMEOUT  seconds to wait for each daemon to answer (default 30).
#
# Exit status 0 means: the node is idle and a batch job ran and was accounted as COMPLETED.
set -euo pipefail

TIMEOUT="${SLURM_TIMEOUT:-30}"
CLUSTER=localcluster
PARTITION=debug
STATE_DIR=/run/assay-slurm            # which daemons this script started (read by stop.sh)
STARTED_FILE="$STATE_DIR/started"     # every daemon any run started (stop.sh without --session)
SESSION="$(date +%s%N)-$$"            # this run: the daemons it starts go to sessions/$SESSION
SESSION_FILE=""
MARKER="# Written by assay scripts/slurm/start.sh"
PACKAGES=(munge mariadb-server slurmdbd slurmctld slurmd slurm-client)

t0=$(date +%s%N)
say() {
  local ms=$((($(date +%s%N) - t0) / 1000000))
  printf '[slurm start %3d.%01ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"
}
die() {
  printf '[slurm start] ERROR: %s\n' "$*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --session-file)
      [ $# -ge 2 ] || die "--session-file needs a file name"
      SESSION_FILE=$2
      shift 2
      ;;
    *) die "unknown argument '$1' (usage: start.sh [--session-file FILE])" ;;
  esac
done

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts system daemons)"

mkdir -p "$STATE_DIR/sessions"
: >"$STATE_DIR/sessions/$SESSION"
if [ -n "$SESSION_FILE" ]; then
  printf '%s\n' "$SESSION" >"$SESSION_FILE" || die "cannot write the session token to $SESSION_FILE"
fi

# ------------------------------------------------------------------ helpers

# alive PIDFILE NAME: the pid file names a live, non-zombie process called NAME.
alive() {
  local pidfile=$1 name=$2 pid state
  [ -r "$pidfile" ] || return 1
  pid=$({ tr -dc '0-9' <"$pidfile"; } 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  # Field 3 of /proc/PID/stat is the state; the command name (field 2) has no spaces here.
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$state" != Z ]
}

# wait_for WHAT PIDFILE NAME LOG -- COMMAND...: poll COMMAND until it succeeds. Fails early when
# the daemon behind PIDFILE has died (launchers return 0 even when the daemon exits a moment later).
wait_for() {
  local what=$1 pidfile=$2 name=$3 log=$4
  shift 5
  local deadline=$(($(date +%s) + TIMEOUT)) grace=$(($(date +%s) + 3))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$grace" ] && [ -n "$pidfile" ] && ! alive "$pidfile" "$name"; then
      [ -f "$log" ] && tail -n 20 "$log" >&2
      die "$what died during startup (see $log and the lines above)"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      [ -f "$log" ] && tail -n 20 "$log" >&2
      die "$what did not become ready within ${TIMEOUT}s (see $log)"
    fi
    sleep 0.2
  done
}

# record_started NAME: this run started daemon NAME (its session file, and the list of all runs).
record_started() {
  mkdir -p "$STATE_DIR/sessions"
  grep -qx "$1" "$STATE_DIR/sessions/$SESSION" 2>/dev/null || echo "$1" >>"$STATE_DIR/sessions/$SESSION"
  grep -qx "$1" "$STARTED_FILE" 2>/dev/null || echo "$1" >>"$STARTED_FILE"
}

# running NAME: a live (non-zombie) process called NAME exists. pgrep alone counts zombies, which
# linger after stop.sh where PID 1 does not reap orphans (a container), though they run nothing.
running() {
  local pid
  for pid in $(pgrep -x "$1" 2>/dev/null); do
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] || return 0
  done
  return 1
}

# write_config PATH CONTENT: write a configuration file unless an identical one is there; refuse
# to overwrite a file that this script did not write.
write_config() {
  local path=$1 content=$2
  if [ -f "$path" ] && ! grep -qF "$MARKER" "$path"; then
    die "$path exists and was not written by this script; move it away to let the script manage Slurm"
  fi
  if [ -f "$path" ] && [ "$(cat "$path")" = "$content" ]; then
    return 0
  fi
  if [ -f "$path" ] && { running slurmctld || running slurmd; }; then
    die "$path would change (other settings, e.g. SLURM_CPUS) while Slurm runs; run scripts/slurm/stop.sh first"
  fi
  printf '%s\n' "$content" >"$path"
  say "wrote $path"
}

# ------------------------------------------------------------------ 1. packages

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt_log=$(mktemp)
  apt-get -o DPkg::Lock::Timeout=120 update -qq >/dev/null || die "apt-get update failed"
  apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "${PACKAGES[@]}" \
    >"$apt_log" 2>&1 || {
    tail -n 30 "$apt_log" >&2
    die "apt-get install failed"
  }
  say "packages installed"
else
  say "packages already installed"
fi

# ------------------------------------------------------------------ 2. directories

install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
install -d -o mysql -g mysql -m 0755 /run/mysqld
install -d -o mysql -g adm -m 0750 /var/log/mysql
install -d -o slurm -g slurm -m 0755 /run/slurm /var/spool/slurmctld /var/log/slurm
install -d -o root -g root -m 0755 /var/spool/slurmd /etc/slurm

# ------------------------------------------------------------------ 3. configuration

host=$(hostname -s)
read -r hw_cpus hw_mem < <(slurmd -C | awk '/^NodeName/ {
  for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "CPUs") c = kv[2]; if (kv[1] == "RealMemory") m = kv[2] }
  print c, m }')
[ -n "$hw_cpus" ] && [ -n "$hw_mem" ] || die "could not read CPUs and RealMemory from 'slurmd -C'"
cpus="${SLURM_CPUS:-$hw_cpus}"
overrides=""
if [ "$cpus" != "$hw_cpus" ]; then
  # Advertising more CPUs than the hardware has is refused unless slurmd trusts the config.
  overrides="SlurmdParameters=config_overrides"
fi

slurm_conf="$MARKER
# A single-node test cluster; see scripts/slurm/README.md for why each key is set.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0
KillWait=5
ReturnToService=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
MailProg=/bin/true
$overrides
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$hw_mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP"
write_config /etc/slurm/slurm.conf "$slurm_conf"

# The database password is made once and kept in slurmdbd.conf (root/slurm only, mode 0600).
password=""
if [ -f /etc/slurm/slurmdbd.conf ]; then
  password=$(sed -n 's/^StoragePass=//p' /etc/slurm/slurmdbd.conf)
fi
[ -n "$password" ] || password=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
dbd_conf="$MARKER
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=/run/slurm/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$password
StorageLoc=slurm_acct_db"
# Write under a restrictive umask: the file holds a password and slurmdbd insists on 0600.
(umask 077 && write_config /etc/slurm/slurmdbd.conf "$dbd_conf")
chown slurm:slurm /etc/slurm/slurmdbd.conf
chmod 0600 /etc/slurm/slurmdbd.conf

# ------------------------------------------------------------------ 4. daemons, in order

# 4.1 munged
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "munged already running"
else
  runuser -u munge -- /usr/sbin/munged 2>>/var/log/munge/munged.stderr ||
    die "munged failed to start (see /var/log/munge/)"
  record_started munged
  wait_for munged /run/munge/munged.pid munged /var/log/munge/munged.log -- \
    sh -c 'munge -n | unmunge'
  say "munged started"
fi

# 4.2 MariaDB
if mariadb-admin --silent ping >/dev/null 2>&1; then
  say "mariadbd already running"
else
  if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/var/log/mysql/install-db.log 2>&1 ||
      die "mariadb-install-db failed (see /var/log/mysql/install-db.log)"
  fi
  # mariadbd does not fork: detach it and close its stdio so that a caller capturing this
  # script's output does not wait for the daemon.
  setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
    --log-error=/var/log/mysql/error.log </dev/null >/dev/null 2>&1 &
  record_started mariadbd
  wait_for mariadbd /run/mysqld/mysqld.pid mariadbd /var/log/mysql/error.log -- \
    sh -c 'mariadb-admin --silent ping && test -s /run/mysqld/mysqld.pid'
  say "mariadbd started"
fi
mariadb <<SQL || die "could not create the accounting database and its user"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$password';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

# slurm_daemon NAME CHECK...: start /usr/sbin/NAME unless its pid file names a live NAME, then wait
# until CHECK succeeds. Launcher stderr is kept: some config errors are printed only there.
slurm_daemon() {
  local name=$1 pidfile=/run/slurm/$1.pid log=/var/log/slurm/$1.log
  shift
  if alive "$pidfile" "$name"; then
    say "$name already running (pid $(cat "$pidfile"))"
    return 0
  fi
  "/usr/sbin/$name" 2>>"/var/log/slurm/$name.stderr" </dev/null >/dev/null || {
    tail -n 20 "/var/log/slurm/$name.stderr" >&2
    die "$name failed to start"
  }
  record_started "$name"
  if ! (wait_for "$name" "$pidfile" "$name" "$log" -- "$@"); then
    [ -s "/var/log/slurm/$name.stderr" ] && tail -n 5 "/var/log/slurm/$name.stderr" >&2
    exit 1
  fi
  say "$name started"
}

# 4.3 slurmdbd must answer before slurmctld starts for the first time (TRES come from the database).
slurm_daemon slurmdbd sacctmgr -n -P list cluster
# 4.4 slurmctld
slurm_daemon slurmctld sh -c 'scontrol ping | grep -q "is UP"'
# 4.5 slurmd; the node must come to idle (a drain kept in the saved state is cleared).
slurm_daemon slurmd sinfo -h -n "$host"
node_state() { sinfo -h -p "$PARTITION" -n "$host" -o %t 2>/dev/null; }
case "$(node_state)" in
  drain* | drng | inval | down*)
    say "node state '$(node_state)', resuming it"
    scontrol update nodename="$host" state=resume || true
    ;;
esac
deadline=$(($(date +%s) + TIMEOUT))
until [[ "$(node_state)" =~ ^(idle|mix|alloc)$ ]]; do
  [ "$(date +%s)" -lt "$deadline" ] || die "node $host is '$(node_state)', not idle, after ${TIMEOUT}s (see /var/log/slurm/slurmd.log; 'sinfo -R' gives the reason)"
  sleep 0.2
done
sacct -n -X -S now-1minutes >/dev/null || die "sacct does not answer: accounting is not working"
say "node $host is $(node_state), $cpus CPUs, partition $PARTITION"

# ------------------------------------------------------------------ 5. smoke job

# A job whose launch failed can still be accounted COMPLETED, so its output is what proves it ran.
# It also takes the ~3 s wait of the first scheduling pass after slurmctld starts.
smoke=$(mktemp -d)
chmod 0777 "$smoke"
# (sbatch --wait is not used: it polls the controller only every few seconds.)
jobid=$(sbatch --parsable --time=1 --job-name=assay-smoke --output="$smoke/out" \
  --wrap='srun echo smoke-ok') || die "could not submit the smoke job (sbatch; see /var/log/slurm/)"
deadline=$(($(date +%s) + TIMEOUT))
until state=$(sacct -n -X -P -j "$jobid" -o State 2>/dev/null) && [[ "$state" =~ ^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE) ]]; do
  [ "$(date +%s)" -lt "$deadline" ] || die "smoke job $jobid did not finish within ${TIMEOUT}s (state '$state'; see squeue and /var/log/slurm/)"
  sleep 0.2
done
[ "$state" = COMPLETED ] || die "smoke job $jobid ended $state (see /var/log/slurm/slurmd.log)"
grep -qx smoke-ok "$smoke/out" 2>/dev/null ||
  die "smoke job $jobid is COMPLETED but left no expected output in $smoke/out (job launch is broken; see /var/log/slurm/slurmd.log)"
rm -rf "$smoke"
say "smoke job $jobid ran (sbatch + srun) and is COMPLETED in sacct; Slurm is ready"
say "session $SESSION started: $(tr '\n' ' ' <"$STATE_DIR/sessions/$SESSION")(stop them with: scripts/slurm/stop.sh --session $SESSION)"
