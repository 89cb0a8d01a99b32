#!/usr/bin/env bash
# Stage 2: log-mel features of a data dir, JOB=1:nj through a Kaldi-style launcher
# (utils/run.pl or utils/slurm.pl), merged into <dump-dir>/feats.scp and utt2num_frames.
# Each job runs python -m local_lib.bin.dump_feats; its log is <dump-dir>/log/dump_feats.JOB.log.
set -euo pipefail

root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cmd="${root}/utils/run.pl"
nj=1
config=""
usage="Usage: $0 [--cmd '<launcher>'] [--nj N] [--config conf/feats.yaml] <data-dir> <dump-dir>"

while [ $# -gt 0 ]; do
  case "$1" in
    --cmd) cmd=$2; shift 2 ;;
    --nj) nj=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    -h|--help) echo "${usage}"; exit 0 ;;
    --*) echo "$0: unknown option $1" >&2; echo "${usage}" >&2; exit 1 ;;
    *) break ;;
  esac
done
[ $# -eq 2 ] || { echo "${usage}" >&2; exit 1; }
[ -f "$1/wav.scp" ] || { echo "$0: $1/wav.scp not found" >&2; exit 1; }
[ -z "${config}" ] || [ -f "${config}" ] || { echo "$0: config ${config} not found" >&2; exit 1; }
if ! [[ "${nj}" =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: --nj must be a positive integer, got ${nj}" >&2
  exit 1
fi

# Absolute paths: a scheduler may start jobs elsewhere, and feats.scp must point anywhere.
data=$(readlink -f "$1")
mkdir -p "$2/log"
dir=$(readlink -f "$2")
config_args=()
[ -z "${config}" ] || config_args=(--config "$(readlink -f "${config}")")
. "${root}/utils/project_python.sh"

# Merged outputs of an earlier run must not outlive a failure of this one.
rm -f "${dir}/feats.scp" "${dir}/utt2num_frames"

echo "$0: computing features of ${data} in ${nj} job(s), logs in ${dir}/log" >&2
if ! ${cmd} JOB=1:"${nj}" "${dir}/log/dump_feats.JOB.log" \
    python -m local_lib.bin.dump_feats "${config_args[@]}" \
      --data-dir "${data}" --out-dir "${dir}" --nj "${nj}" --job JOB; then
  failed=""
  for job in $(seq 1 "${nj}"); do
    log="${dir}/log/dump_feats.${job}.log"
    [ -f "${dir}/feats.${job}.scp" ] || [ ! -f "${log}" ] || failed="${failed} ${log}"
  done
  if [ -z "${failed}" ]; then
    echo "$0: feature extraction failed before any job wrote its log: see the launcher's message above (${cmd%% *})" >&2
  else
    echo "$0: feature extraction failed; see${failed}" >&2
  fi
  exit 1
fi

scps=() frames=()
for job in $(seq 1 "${nj}"); do
  for part in "${dir}/feats.${job}.scp" "${dir}/utt2num_frames.${job}"; do
    if [ ! -f "${part}" ]; then
      echo "$0: ${part} missing; see ${dir}/log/dump_feats.${job}.log" >&2
      exit 1
    fi
  done
  scps+=("${dir}/feats.${job}.scp")
  frames+=("${dir}/utt2num_frames.${job}")
done
LC_ALL=C sort -k1,1 "${frames[@]}" > "${dir}/.utt2num_frames.tmp"
LC_ALL=C sort -k1,1 "${scps[@]}" > "${dir}/.feats.scp.tmp"
mv "${dir}/.utt2num_frames.tmp" "${dir}/utt2num_frames"
mv "${dir}/.feats.scp.tmp" "${dir}/feats.scp"

expected=$(wc -l < "${data}/$([ -f "${data}/segments" ] && echo segments || echo wav.scp)")
got=$(wc -l < "${dir}/feats.scp")
if [ "${got}" -ne "${expected}" ]; then
  echo "$0: ${dir}/feats.scp has ${got} utterances, ${data} has ${expected}" >&2
  exit 1
fi
echo "$0: wrote ${got} utterances to ${dir}/feats.scp" >&2
