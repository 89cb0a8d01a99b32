# What keeps a recipe run safe, sourced by tts_rl.sh: one writer per recipe dir, no job left
# running after run.sh has returned, stage outputs trusted only while their inputs are the ones
# they were made from, and a stage's missing inputs named before any stage starts.

# supervise_run ARGS...: run the pipeline ("$0" ARGS) as a child in a process group of its own,
# holding the recipe dir's lock, and return its exit status. When the pipeline ends (done,
# failed) or this process is interrupted (Ctrl-C, kill), whatever is left in that group -- stage
# 3's background trainers, run.pl and slurm.pl, which stop their own tasks and Slurm arrays on
# SIGTERM -- is stopped, and run.sh returns only once it has ended (SIGKILL after 30 s). The lock
# is a flock on .run.lock, which holds the PID: the kernel releases it when its holders exit, so
# a crashed run needs no clean-up, and jobs that outlive a run.sh killed with SIGKILL keep it,
# so no second writer starts beside them.
supervise_run() {
  local lock=.run.lock holder child rc
  exec {lock_fd}>>"${lock}"
  if ! flock -n "${lock_fd}"; then
    holder=$(head -n 1 "${lock}" 2>/dev/null || true)
    if [ -n "${holder}" ] && kill -0 "${holder%% *}" 2>/dev/null; then
      echo "$0: another run is using $(pwd) (PID ${holder%% *}, lock ${lock}); wait for it or stop it" >&2
    else
      echo "$0: jobs of an earlier run (run.sh PID ${holder%% *}, gone) are still running in $(pwd) and hold ${lock}; see: fuser -v ${lock}" >&2
    fi
    exit 1
  fi
  echo "$$ $(date '+%Y-%m-%dT%H:%M:%S')" > "${lock}"
  TTS_RL_SUPERVISED=$$ setsid "$0" "$@" &
  child=$!
  trap 'kill -TERM -- "-${child}" 2> /dev/null || true' INT TERM
  # wait returns early when a trap ran; wait again until the pipeline itself has ended.
  while :; do
    rc=0
    wait "${child}" || rc=$?
    kill -0 "${child}" 2> /dev/null || break
  done
  stop_group "${child}"
  exit "${rc}"
}

# stop_group PGID: SIGTERM to every process of the group, then wait until none is left.
stop_group() {
  local tries
  kill -TERM -- "-$1" 2> /dev/null || return 0
  for tries in $(seq 300); do
    kill -0 -- "-$1" 2> /dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$1" 2> /dev/null || true
}

# show_progress SECONDS: every SECONDS, one console line per job still writing its log under
# exp/ or dump/ (no "# Ended" footer yet, written in the last ten minutes) with the last
# "step n/N ... eta Ts" it logged, so a long stage is not silent. Runs in the background until
# the run ends (supervise_run stops it with the other jobs).
show_progress() {
  local every=$1 logfile line step eta
  while sleep "${every}"; do
    while IFS= read -r logfile; do
      [[ "$(tail -n 3 "${logfile}")" != *"# Ended ("* ]] || continue
      line=$(grep -aoE 'step [0-9]+/[0-9]+ .*eta [0-9]+s' "${logfile}" | tail -n 1) || continue
      step=${line#step } step=${step%% *}
      eta=${line##*eta }
      log "progress: ${logfile%/log/*}: step ${step}, about ${eta} left (${logfile})"
    done < <(find exp dump -path '*/log/*.log' -mmin -10 2> /dev/null | sort)
  done
}

# stage_is_done STAGE MARKER [--output FILE]... -- ARGS...: true (and says so) when MARKER
# records ARGS and the content of every input they name (local_lib/bin/stage_record.py) and the
# outputs exist; a stale marker is logged with what changed, and the work is redone.
stage_is_done() {
  local stage=$1 marker=$2 why
  shift 2
  if why=$(python -m local_lib.bin.stage_record check "${marker}" "$@"); then
    log "stage ${stage}: ${marker} is up to date, skipping"
    return 0
  fi
  [ -z "${why}" ] || log "stage ${stage}: ${why}; redoing"
  return 1
}

# stage_begin MARKER [--resume-dir DIR] -- ARGS...: record the inputs before the work starts;
# with --resume-dir, refuse to resume checkpoints made from other inputs.
stage_begin() { python -m local_lib.bin.stage_record begin "$@" || exit 1; }

# stage_finish MARKER: the work recorded by stage_begin succeeded.
stage_finish() { python -m local_lib.bin.stage_record finish "$1" || exit 1; }

# needs STAGE PRODUCER PATH...: stage STAGE reads PATH, which stage PRODUCER writes. Declared by
# tts_rl.sh and the family's file; check_stage_inputs reads them.
declare -A stage_needs=() base_hint=()
needs() {
  local stage=$1 producer=$2
  shift 2
  local path
  for path in "$@"; do stage_needs[${stage}]+=" ${producer}:${path}"; done
}

# check_stage_inputs: before any stage runs, every input of an asked stage that no asked stage
# writes must exist; otherwise fail naming each missing one and the stage that writes it.
check_stage_inputs() {
  local n item producer path missing=""
  for n in ${runnable}; do
    for item in ${stage_needs[${n}]:-}; do
      producer=${item%%:*} path=${item#*:}
      run_stage "${producer}" && [ "${producer}" -lt "${n}" ] && continue
      [ -e "${path}" ] || missing+=$'\n'"  stage ${n} needs ${path} (written by stage ${producer}${base_hint[${path}]:-})"
    done
  done
  [ -z "${missing}" ] || { echo "$0: missing inputs, no stage has run:${missing}" >&2; exit 1; }
}
