#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for the SlurmExecutor's tests.
#
#   bash scripts/services/slurm.sh install   # Debian packages slurm-wlm + munge (quick when present)
#   bash scripts/services/slurm.sh up        # munged, slurmctld, slurmd; returns once the node is idle
#   bash scripts/services/slurm.sh down      # stops only what `up` started (PID files)
#   bash scripts/services/slurm.sh env       # prints `export SLURM_CONF=...` for clients
#
# Runs as root on a machine without systemd: every daemon is started here, in the
# foreground with `&`, and its PID kept under $COVALENT_SLURM_DIR (default
# /tmp/covalent-slurm), where the config, state and logs live too. Daemons and clients
# (sbatch, squeue, ...) read the config through SLURM_CONF; the tests find it in the
# default folder by themselves. Everything talks over 127.0.0.1 only.
#
# The node declares at least 8 CPUs whatever the hardware has (SlurmdParameters=
# config_overrides), so that several one-CPU jobs run at once on a 2-core machine.
# No accounting database: the executor reads job states from squeue/scontrol.
set -euo pipefail

DIR=${COVALENT_SLURM_DIR:-/tmp/covalent-slurm}
CTLD_PORT=${COVALENT_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${COVALENT_SLURMD_PORT:-6818}
PARTITION=${COVALENT_SLURM_PARTITION:-debug}
DEADLINE=${COVALENT_SLURM_DEADLINE:-120}   # seconds `up` waits for each daemon
export SLURM_CONF=$DIR/slurm.conf

log() { echo "slurm.sh: $*" >&2; }

# wait_until SECONDS DESCRIPTION CMD...: retry CMD until it succeeds or the deadline passes.
wait_until() {
  local limit=$1 what=$2; shift 2
  local end=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then
      log "timed out after ${limit} s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

cmd_install() {
  if command -v sbatch >/dev/null && [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] \
     && [ -x /usr/sbin/munged ]; then
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache show slurm-wlm munge >/dev/null 2>&1; then
    apt-get update -q
  fi
  apt-get install -y -q --no-install-recommends slurm-wlm munge
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  [ -s /etc/munge/munge.key ] || runuser -u munge -- mungekey -c
  install -d -o munge -g munge -m 755 /run/munge
  if munge_works; then
    return 0   # someone else's munged: use it, and leave it running on `down`
  fi
  runuser -u munge -- /usr/sbin/munged   # daemonizes; writes /run/munge/munged.pid
  wait_until "$DEADLINE" munged munge_works
  cp /run/munge/munged.pid "$DIR/munged.pid"
}

write_config() {
  local node cpus mem
  node=$(hostname -s)
  cpus=$(nproc); [ "$cpus" -ge 8 ] || cpus=8
  mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 8 / 10 ))
  cat > "$SLURM_CONF" <<CONF
# Written by scripts/services/slurm.sh; rewritten at every \`up\`.
ClusterName=covalent
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.daemon.pid
SlurmdPidFile=$DIR/slurmd.daemon.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=100000
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
KillWait=5
MinJobAge=600
SlurmctldTimeout=60
SlurmdTimeout=60
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

node_idle() { sinfo -h -o %T | grep -Eq '^idle|^mixed|^allocated'; }

cmd_up() {
  mkdir -p "$DIR"
  if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then
    wait_until "$DEADLINE" "the Slurm node to be idle" node_idle
    log "already up; export SLURM_CONF=$SLURM_CONF"
    return 0
  fi
  cmd_down 2>/dev/null || true
  rm -rf "$DIR/state" "$DIR/spool"   # fresh state: no jobs left from an earlier run
  mkdir -p "$DIR/state" "$DIR/spool"
  start_munge
  write_config
  /usr/sbin/slurmctld -D -i > "$DIR/slurmctld.out" 2>&1 &
  echo $! > "$DIR/slurmctld.pid"
  /usr/sbin/slurmd -D > "$DIR/slurmd.out" 2>&1 &
  echo $! > "$DIR/slurmd.pid"
  if ! wait_until "$DEADLINE" "the Slurm node to be idle" node_idle; then
    tail -n 20 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
    sinfo >&2 || true
    return 1
  fi
  log "up; export SLURM_CONF=$SLURM_CONF"
}

stop_pid_file() {
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -TERM "$pid" 2>/dev/null; then
    local end=$(( $(date +%s) + 30 ))
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

cmd_down() {
  for name in slurmd slurmctld munged; do
    stop_pid_file "$DIR/$name.pid"
  done
}

case "${1:-}" in
  install) cmd_install ;;
  up) cmd_up ;;
  down) cmd_down ;;
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  *) echo "usage: $0 install|up|down|env" >&2; exit 2 ;;
esac
