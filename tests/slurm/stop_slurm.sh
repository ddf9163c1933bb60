#!/usr/bin/env bash
# Stop exactly the daemons that start_slurm.sh started: the PIDs in $BASE/started/*.pid, each checked
# against /proc/PID/comm first (a PID reused by another program is left alone), newest first.
# Daemons that were already running before start_slurm.sh (e.g. a system munged) are not touched.
set -uo pipefail
BASE=${LOCAL_SLURM_DIR:-${TMPDIR:-/tmp}/impressions-slurm}
STARTED=$BASE/started
ours() { # ours NAME: sets $p to the recorded PID if it is still that daemon
  [ -s "$STARTED/$1.pid" ] && p=$(cat "$STARTED/$1.pid") && kill -0 "$p" 2>/dev/null &&
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$1" ]
}
# Cancel the jobs of our cluster first, so no slurmstepd is left running after slurmd stops.
if ours slurmctld && ours slurmd; then
  ids=$(squeue -h -o %i 2>/dev/null || true)
  if [ -n "$ids" ]; then
    echo "cancelling jobs: $ids"
    # shellcheck disable=SC2086  # one argument per job id
    scancel $ids || true
    for _ in $(seq 1 30); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 1; done
  fi
fi
status=0
for name in slurmd slurmctld slurmdbd mariadbd munged; do
  f=$STARTED/$name.pid
  [ -f "$f" ] || continue
  if ours "$name"; then
    kill -TERM "$p"
    for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$p" 2>/dev/null; then
      echo "$name ($p) ignored SIGTERM for 30 s, sending SIGKILL"
      kill -KILL "$p"
      sleep 0.5
    fi
    if kill -0 "$p" 2>/dev/null; then echo "$name ($p) is still running" >&2; status=1; continue; fi
    echo "stopped $name ($p)"
  else
    echo "$name: pid $(cat "$f") not running (or not $name); nothing to stop"
  fi
  rm -f "$f"
done
exit $status
