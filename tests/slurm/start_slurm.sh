#!/usr/bin/env bash
# Start a single-node SLURM on loopback for the tests: munged, MariaDB, slurmdbd, slurmctld, slurmd.
#
# Adapted from the shared local-SLURM recipe. Why each piece is there:
# - slurmdbd + MariaDB: snakemake-executor-plugin-slurm polls job states with `sacct`, which needs
#   accounting storage; without it the plugin waits forever (unless run with
#   `--slurm-status-command squeue`). The tests also read `sacct` to prove jobs ran under SLURM.
# - Everything binds to 127.0.0.1 (NoInAddrAny) and runs as root without cgroups, so it works in a
#   container or VM with no systemd.
#
# Idempotent: installs missing packages, (re)writes the config, starts only daemons that are not
# already running. The PID of every daemon started here is written to $BASE/started/<name>.pid, and
# stop_slurm.sh stops exactly those, by PID.
#
# Environment:
#   LOCAL_SLURM_DIR   state, logs and PID files (default ${TMPDIR:-/tmp}/impressions-slurm)
#   SLURM_TEST_ACCOUNT  the SLURM account created for root (default: impressions)
#   SLURM_TEST_DB_PORT  MariaDB TCP port on 127.0.0.1 (default: 3306)
#
# Exit status: 0 ready; 2 no local SLURM possible here: the Debian packages are missing and cannot be
# installed (no apt-get, or apt-get failed) or not root (needed to install them and to run the
# daemons): callers skip; 1 anything else (callers fail).
set -euo pipefail
trap 'echo "start_slurm.sh: line $LINENO failed: $BASH_COMMAND (logs under ${LOG:-?})" >&2' ERR
T0=$(date +%s)
BASE=${LOCAL_SLURM_DIR:-${TMPDIR:-/tmp}/impressions-slurm}
ACCOUNT=${SLURM_TEST_ACCOUNT:-impressions}
DBPORT=${SLURM_TEST_DB_PORT:-3306}
CLUSTER=local
PARTITION=debug
GPU_PARTITION=gpu
GPU_MODEL=testgpu
DBPASS=slurmdbpass  # a loopback-only database for a throwaway test cluster
MARKER="# written by impressions tests/slurm/start_slurm.sh"
LOG=$BASE/log
STARTED=$BASE/started
MY=$BASE/mysqld
APT="apt-get -o DPkg::Lock::Timeout=900"
say() { echo "[start_slurm $(($(date +%s) - T0))s] $*"; }
unavailable() { echo "no local SLURM here: $*" >&2; exit 2; }
alive() { # alive PIDFILE COMM: the PID in PIDFILE is running and is COMM (not a reused PID)
  [ -s "$1" ] || return 1
  local p
  p=$(cat "$1")
  kill -0 "$p" 2>/dev/null && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ]
}
waitfor() { # waitfor SECONDS DESCRIPTION CMD...
  local n=$1 d=$2
  shift 2
  for _ in $(seq 1 $((n * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "timeout waiting for $d (logs: $LOG)" >&2
  return 1
}
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
need_port() { # need_port NAME PORT: fail early and clearly if another program (another SLURM) has it
  if port_busy "$2"; then
    echo "cannot start $1: port $2 on 127.0.0.1 is taken (another SLURM or database running?" \
      "one started by this script with another LOCAL_SLURM_DIR stops with stop_slurm.sh)" >&2
    exit 1
  fi
}
record() { # record NAME PIDFILE: remember that this script started NAME
  cp "$2" "$STARTED/$1.pid"
  say "started $1 ($(cat "$2"))"
}

mkdir -p "$BASE"

# 1. Packages. Only root can install them; without them there is nothing to test against.
PKGS="slurm-wlm munge slurmdbd mariadb-server"
MISSING=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || MISSING="$MISSING $p"; done
if [ -n "$MISSING" ]; then
  [ "$(id -u)" = 0 ] || unavailable "not root (missing:$MISSING)"
  command -v apt-get >/dev/null || unavailable "no apt-get (missing:$MISSING)"
  say "installing:$MISSING (log: $BASE/apt.log)"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages' init scripts from starting their own daemons during installation (no
  # systemd here, so invoke-rc.d would run them): every daemon must be one this script started and
  # records, or stop_slurm.sh could not stop it.
  POLICY=/usr/sbin/policy-rc.d
  OWN_POLICY=""
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY" && chmod 755 "$POLICY" && OWN_POLICY=1
  fi
  # shellcheck disable=SC2086  # word splitting of the package list is intended
  if ! $APT install -y -q --no-install-recommends $MISSING >"$BASE/apt.log" 2>&1; then
    # a fresh machine may have no package lists yet
    $APT update -q >>"$BASE/apt.log" 2>&1 || true
    $APT install -y -q --no-install-recommends $MISSING >>"$BASE/apt.log" 2>&1 || {
      [ -n "$OWN_POLICY" ] && rm -f "$POLICY"
      tail -5 "$BASE/apt.log" >&2
      unavailable "apt-get install failed (missing:$MISSING; see $BASE/apt.log)"
    }
  fi
  [ -n "$OWN_POLICY" ] && rm -f "$POLICY"
  say "installed"
fi
# The daemons run as root and the config lives in /etc/slurm: nothing to try without root.
[ "$(id -u)" = 0 ] || unavailable "not root (the test cluster's daemons run as root and read /etc/slurm)"
mkdir -p "$LOG" "$STARTED" "$BASE/slurmctld" "$BASE/slurmd"

# 2. The node name must resolve: NoInAddrAny binds each daemon to the address its name resolves to.
NODE=$(hostname -s)
ADDR=$(getent hosts "$NODE" | awk '{print $1; exit}')
if [ -z "$ADDR" ]; then
  echo "127.0.0.1 $NODE" >>/etc/hosts
  ADDR=127.0.0.1
fi
case "$ADDR" in 127.*) ;; *) say "WARNING: $NODE resolves to $ADDR, not loopback" ;; esac
HW=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //') # CPUs=.. RealMemory=.. as detected

# 3. Config. SLURM tools (sbatch, sacct, srun inside jobs) read /etc/slurm/slurm.conf: a private
# SLURM_CONF would not reach the `srun` that the plugin's job step runs, since it drops SLURM_*
# variables. Never overwrite a configuration this script did not write (a real cluster's).
for f in /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf /etc/slurm/gres.conf; do
  if [ -s "$f" ] && ! grep -qF "$MARKER" "$f"; then
    echo "$f exists and was not written by this script: refusing to overwrite a real SLURM" \
      "configuration (move it away to run the SLURM tests here)" >&2
    exit 1
  fi
done
mkdir -p /etc/slurm
cat >"$BASE/slurm.conf.new" <<EOF
$MARKER
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SwitchType=switch/none
# no cgroups in a container: track processes through /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MailProg=/bin/true
MinJobAge=300
StateSaveLocation=$BASE/slurmctld
SlurmdSpoolDir=$BASE/slurmd
SlurmctldPidFile=$BASE/slurmctld.pid
SlurmdPidFile=$BASE/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
# keep sbatch --comment (the plugin puts the rule or group name there) so sacct can show it
AccountingStoreFlags=job_comment
# account GPUs too, by model, so sacct shows gres/gpu and gres/gpu:<model> in ReqTRES and AllocTRES
AccountingStorageTRES=gres/gpu,gres/gpu:$GPU_MODEL
JobCompType=jobcomp/none
# One stand-in GPU of model "$GPU_MODEL" (gres.conf maps it to /dev/null) and a "$GPU_PARTITION" partition
# beside "$PARTITION": let the tests check that GPU requests (sbatch --gpus, -p) are accepted,
# allocated and accounted. Nothing real is behind it; jobs that look for CUDA find none.
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 $HW Gres=gpu:$GPU_MODEL:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=$GPU_PARTITION Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
EOF
cmp -s "$BASE/slurm.conf.new" /etc/slurm/slurm.conf || {
  cp "$BASE/slurm.conf.new" /etc/slurm/slurm.conf
  say "wrote /etc/slurm/slurm.conf"
}
cat >"$BASE/gres.conf.new" <<EOF
$MARKER
# no real device: slurmd only counts the files, and a GPU needs one to be counted
AutoDetect=off
NodeName=$NODE Name=gpu Type=$GPU_MODEL File=/dev/null
EOF
cmp -s "$BASE/gres.conf.new" /etc/slurm/gres.conf || {
  cp "$BASE/gres.conf.new" /etc/slurm/gres.conf
  say "wrote /etc/slurm/gres.conf"
}
cat >"$BASE/slurmdbd.conf.new" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=$NODE
DbdAddr=127.0.0.1
DbdPort=6819
CommunicationParameters=NoInAddrAny
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DBPORT
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
PidFile=$BASE/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
EOF
# slurmdbd refuses a config that others can read (it holds the database password)
cmp -s "$BASE/slurmdbd.conf.new" /etc/slurm/slurmdbd.conf || {
  install -m 600 "$BASE/slurmdbd.conf.new" /etc/slurm/slurmdbd.conf
  say "wrote /etc/slurm/slurmdbd.conf"
}

# 4. munged (authenticates every SLURM message). One already running (the system's) is used and not
# recorded, so it is left running.
if alive /run/munge/munged.pid munged; then
  say "munged already running ($(cat /run/munge/munged.pid))"
else
  install -d -o munge -g munge -m 0755 /run/munge
  [ -s /etc/munge/munge.key ] || { runuser -u munge -- mungekey --create 2>/dev/null || create-munge-key -f; }
  runuser -u munge -- /usr/sbin/munged
  waitfor 10 munged alive /run/munge/munged.pid munged
  record munged /run/munge/munged.pid
fi
munge -n | unmunge >/dev/null

# 5. MariaDB with a private data directory under $BASE, on 127.0.0.1 only.
if alive "$MY/mariadbd.pid" mariadbd; then
  say "mariadbd already running ($(cat "$MY/mariadbd.pid"))"
else
  need_port mariadbd "$DBPORT" # or choose another with SLURM_TEST_DB_PORT
  # Run as root, like the SLURM daemons: $BASE may sit below a directory only root can enter (pytest's
  # temporary directories are 0700), which the mysql user could not reach.
  mkdir -p "$MY/data"
  if [ ! -d "$MY/data/mysql" ]; then
    mariadb-install-db --no-defaults --user=root --datadir="$MY/data" \
      --auth-root-authentication-method=socket --skip-test-db >"$LOG/mariadb-install.log" 2>&1
  fi
  setsid mariadbd --no-defaults --user=root --datadir="$MY/data" --socket="$MY/mysqld.sock" \
    --pid-file="$MY/mariadbd.pid" --bind-address=127.0.0.1 --port="$DBPORT" --skip-name-resolve \
    --log-error="$MY/mariadbd.log" --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
  waitfor 60 mariadbd mariadb-admin --socket="$MY/mysqld.sock" ping
  waitfor 10 "mariadbd pid file" alive "$MY/mariadbd.pid" mariadbd
  record mariadbd "$MY/mariadbd.pid"
fi
mariadb --socket="$MY/mysqld.sock" -e "
  CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DBPASS';
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

# 6. slurmdbd (accounting: what sacct reads)
if alive "$BASE/slurmdbd.pid" slurmdbd; then
  say "slurmdbd already running ($(cat "$BASE/slurmdbd.pid"))"
else
  need_port slurmdbd 6819
  slurmdbd
  waitfor 30 slurmdbd sacctmgr -n list cluster
  record slurmdbd "$BASE/slurmdbd.pid"
fi
# The cluster must be registered before slurmctld starts, or its jobs are not accounted. The account
# and root's association make the plugin's account check (sacctmgr list user) pass for real.
sacctmgr -n list cluster format=cluster%40 | grep -qw "$CLUSTER" ||
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
sacctmgr -n list account format=account%40 | grep -qw "$ACCOUNT" ||
  sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description=tests organization=tests >/dev/null
sacctmgr -n list user root format=account%40 withassoc | grep -qw "$ACCOUNT" ||
  sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null

# 7. slurmctld
if alive "$BASE/slurmctld.pid" slurmctld; then
  say "slurmctld already running ($(cat "$BASE/slurmctld.pid"))"
else
  need_port slurmctld 6817
  slurmctld
  waitfor 30 slurmctld sh -c 'scontrol ping | grep -q UP'
  record slurmctld "$BASE/slurmctld.pid"
fi

# 8. slurmd (the compute node)
if alive "$BASE/slurmd.pid" slurmd; then
  say "slurmd already running ($(cat "$BASE/slurmd.pid"))"
else
  need_port slurmd 6818
  slurmd
  waitfor 10 slurmd alive "$BASE/slurmd.pid" slurmd
  record slurmd "$BASE/slurmd.pid"
fi
node_ok() { sinfo -h -n "$NODE" -o %T | grep -qE '^(idle|mixed|allocated|completing)$'; }
if ! waitfor 30 "node $NODE idle" node_ok; then
  scontrol update NodeName="$NODE" State=RESUME || true
  waitfor 15 "node $NODE idle" node_ok
fi
sinfo
say "SLURM ready: cluster=$CLUSTER partitions=$PARTITION,$GPU_PARTITION gpu=$GPU_MODEL" \
  "account=$ACCOUNT in $(($(date +%s) - T0))s (state, logs, PIDs: $BASE)"
