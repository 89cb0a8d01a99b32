#!/usr/bin/env bash
# Stop the one-node Slurm cluster started by start_local_slurm.sh on <state_dir>.
#
# Usage: tools/slurm/stop_local_slurm.sh <state_dir>
#
# Cancels that cluster's jobs, then stops slurmd, slurmctld and munged by the pids recorded in
# the state dir (nothing else is touched). Safe to run when nothing is running.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 <state_dir>" >&2; exit 1; }
state=$1
[ -d "$state" ] || exit 0
export PATH="$PATH:/usr/sbin:/sbin"

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

stop_pidfile() {
  local pidfile=$1 pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if pid_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do pid_alive "$pid" || break; sleep 0.1; done
    pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}

if [ -f "$state/slurm.conf" ] && [ -s "$state/run/slurmctld.pid" ] \
  && pid_alive "$(cat "$state/run/slurmctld.pid")"; then
  jobs=$(SLURM_CONF="$state/slurm.conf" squeue -h -o '%A' 2>/dev/null | sort -u)
  # shellcheck disable=SC2086
  [ -n "$jobs" ] && SLURM_CONF="$state/slurm.conf" scancel $jobs 2>/dev/null
fi
stop_pidfile "$state/run/slurmd.pid"
stop_pidfile "$state/run/slurmctld.pid"
stop_pidfile "$state/munge/munged.pid"
exit 0
