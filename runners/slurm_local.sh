#!/usr/bin/env bash
# slurm_local.sh: a throwaway single-node Slurm cluster on this machine, for tests and for trying the Slurm
# runner. `slurm_local.sh start DIR` writes DIR/slurm.conf (this host as controller and only node, ports
# picked free, all state under DIR), starts a private munged (its own socket, Debian's key) and slurmctld and
# slurmd in the foreground under this script's control, and waits until the node is idle; it prints the
# `export SLURM_CONF=...` line clients need. `slurm_local.sh stop DIR` stops exactly the daemons it started
# (by the pids recorded in DIR). Needs root and Debian's slurm-wlm and munge (`install` installs them).
# Exit: 0 ok, 1 failed to start (logs in DIR/*.log), 2 usage, 3 not root or packages missing.
set -u
cmd=${1:-}; dir=${2:-}
usage() { echo "usage: runners/slurm_local.sh install | start DIR | stop DIR" >&2; exit 2; }
have() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null; }

case "$cmd" in
install)
  [ "$(id -u)" = 0 ] || { echo "slurm_local.sh: installing needs root" >&2; exit 3; }
  have && exit 0
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge >&2 ||
    { DEBIAN_FRONTEND=noninteractive apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge >&2; } ||
    { echo "slurm_local.sh: apt-get could not install slurm-wlm munge" >&2; exit 3; }
  have || exit 3
  ;;
start)
  [ -n "$dir" ] || usage
  [ "$(id -u)" = 0 ] || { echo "slurm_local.sh: needs root (slurmd runs jobs as their users)" >&2; exit 3; }
  have || { echo "slurm_local.sh: slurm-wlm and munge are not installed (slurm_local.sh install)" >&2; exit 3; }
  mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
  dir=$(cd "$dir" && pwd)
  key=/etc/munge/munge.key
  if [ ! -s "$key" ]; then key=$dir/munge/munge.key; dd if=/dev/urandom of="$key" bs=1024 count=1 2>/dev/null; chmod 400 "$key"; fi
  # Two free ports: random ones in 20000-59999 that nothing listens on (ss from iproute2, when present).
  free_port() {
    local p
    for _ in $(seq 100); do
      p=$((20000 + RANDOM % 40000))
      command -v ss >/dev/null && ss -Htan "sport = :$p" 2>/dev/null | grep -q . && continue
      echo "$p"; return
    done
  }
  p1=$(free_port); p2=$(free_port)
  [ "$p1" != "$p2" ] || p2=$((p1 + 1))
  host=$(hostname -s)
  cpus=$(nproc)
  cat > "$dir/slurm.conf" <<CONF
# written by runners/slurm_local.sh: one node, this host, everything under $dir
ClusterName=reprolocal
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=$p1
SlurmdPort=$p2
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=30
NodeName=repronode NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=2048 State=UNKNOWN
PartitionName=repro Nodes=repronode Default=YES MaxTime=INFINITE State=UP
CONF
  munged --foreground --force --socket="$dir/munge/munge.sock" --key-file="$key" --pid-file="$dir/munge/munged.pid" \
    --seed-file="$dir/munge/munge.seed" --log-file="$dir/munged.log" >/dev/null 2>&1 &
  echo $! > "$dir/munged.started"
  for _ in $(seq 50); do [ -S "$dir/munge/munge.sock" ] && break; sleep 0.1; done
  export SLURM_CONF=$dir/slurm.conf
  slurmctld -D -i -f "$dir/slurm.conf" >"$dir/slurmctld.out" 2>&1 &
  echo $! > "$dir/slurmctld.started"
  slurmd -D -N repronode -f "$dir/slurm.conf" >"$dir/slurmd.out" 2>&1 &
  echo $! > "$dir/slurmd.started"
  for _ in $(seq 300); do
    state=$(sinfo -h -n repronode -o %T 2>/dev/null)
    case "$state" in idle*) echo "export SLURM_CONF=$dir/slurm.conf"; exit 0;; esac
    sleep 0.1
  done
  echo "slurm_local.sh: the node did not become idle in 30 s (state '${state:-none}'); see $dir/*.log $dir/*.out" >&2
  exit 1
  ;;
stop)
  [ -n "$dir" ] || usage
  for d in slurmd slurmctld munged; do
    f=$dir/$d.started
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    rm -f "$f"
  done
  ;;
*) usage ;;
esac
