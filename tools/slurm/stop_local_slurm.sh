#!/usr/bin/env bash
# Stop the one-node Slurm cluster started by start_local_slurm.sh on <state_dir>.
#
# Usage: tools/slurm/stop_local_slurm.sh <state_dir>
#
# Cancels that cluster's jobs, then stops slurmd, slurmctld and munged by the pids recorded in
# the state dir, and only if that pid still runs the daemon named (a stale pid file whose pid
# was reused is ignored). Safe to run when nothing is running.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 <state_dir>" >&2; exit 1; }
state=$1
[ -d "$state" ] || exit 0
export PATH="$PATH:/usr/sbin:/sbin"

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
runs_daemon() { [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }

if [ -f "$state/slurm.conf" ] && [ -s "$state/run/slurmctld.pid" ] \
  && runs_daemon "$(cat "$state/run/slurmctld.pid")" slurmctld; then
  jobs=$(SLURM_CONF="$state/slurm.conf" squeue -h -o '%A' 2>/dev/null | sort -u)
  # shellcheck disable=SC2086
  [ -n "$jobs" ] && SLURM_CONF="$state/slurm.conf" scancel $jobs 2>/dev/null
fi

# Each daemon takes a second or two to exit, so signal all of them and then wait.
pids=()
for entry in run/slurmd.pid:slurmd run/slurmctld.pid:slurmctld munge/munged.pid:munged; do
  pidfile=$state/${entry%%:*}
  [ -s "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  runs_daemon "$pid" "${entry#*:}" && kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  rm -f "$pidfile"
done
for _ in $(seq 1 100); do
  alive=()
  for pid in "${pids[@]}"; do pid_alive "$pid" && alive+=("$pid"); done
  [ ${#alive[@]} -eq 0 ] && exit 0
  sleep 0.1
done
kill -KILL "${alive[@]}" 2>/dev/null
exit 0
