#!/usr/bin/env bash
# The pipeline every recipe shares. A recipe's run.sh calls it with its method and configs;
# the corpus-specific part is the recipe's local/data.sh, db.sh and conf/.
#
# Stages (the same numbers in every recipe; README.md says which are built):
#   1 corpus preparation (local/data.sh)      -> data/{train,dev,test}
#   2 features, parallel over --nj            -> dump/<set>/feats.scp
#   3 reward models and evaluators            -> exp/reward_*, exp/eval_*
#   4 base TTS                                -> exp/tts_base
#   5 the method                              -> exp/tts_<method>
#   6 synthesis of the test sets              -> exp/*/synth
#   7 scoring                                 -> exp/*/RESULTS.md
#   8 report                                  -> exp/report
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') ($(basename "$0")) $*"; }

# The stages this version of the repository implements; asking for more is an error, not a no-op.
last_built_stage=2

stage=1
stop_stage=${last_built_stage}
nj=2
ngpu=0
seed=0
tag=""
method=""
feats_config=conf/feats.yaml
train_set=train
dev_set=dev
test_sets="test"

help_message="Usage: $0 --method <name> [options]
  --stage N / --stop_stage N   run stages N..M (1..8; built so far: 1..${last_built_stage})
  --nj N                       parallel jobs for stages 2 and 6 (default ${nj})
  --ngpu N                     GPUs per training job (default ${ngpu})
  --seed N                     seed for corpus generation and training (default ${seed})
  --tag NAME                   suffix for exp/ directories
  --feats_config FILE          log-mel settings (default ${feats_config})
  --esd_root / --libritts_root / --seedtts_root DIR   corpus roots (default: db.sh; empty = mini corpus)"

. ./db.sh
esd_root=${ESD:-}
libritts_root=${LIBRITTS:-}
seedtts_root=${SEEDTTS:-}

. utils/parse_options.sh
. ./path.sh
. ./cmd.sh

[ -n "${method}" ] || { echo "$0: --method is required" >&2; exit 1; }
if [ "${stop_stage}" -gt "${last_built_stage}" ]; then
  echo "$0: stages after ${last_built_stage} are not built yet in this repository" \
       "(asked for --stop_stage ${stop_stage}); see README.md" >&2
  exit 1
fi

# local/data.sh reads the roots from the environment, so run.sh options reach it unchanged.
export ESD=${esd_root} LIBRITTS=${libritts_root} SEEDTTS=${seedtts_root}
all_sets="${train_set} ${dev_set} ${test_sets}"

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
  log "stage 1: corpus preparation"
  if [ -f data/.done ]; then
    log "stage 1: data/.done exists, skipping"
  else
    local/data.sh --seed "${seed}" --nj "${nj}" data
    for dset in ${all_sets}; do
      utils/validate_data_dir.sh "data/${dset}"
    done
    touch data/.done
  fi
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
  log "stage 2: log-mel features (nj=${nj}, backend=${cmd_backend})"
  for dset in ${all_sets}; do
    if [ -f "dump/${dset}/.done" ]; then
      log "stage 2: dump/${dset}/.done exists, skipping"
      continue
    fi
    utils/dump_feats.sh --cmd "${train_cmd}" --nj "${nj}" --config "${feats_config}" \
      "data/${dset}" "dump/${dset}"
    touch "dump/${dset}/.done"
  done
fi

log "finished stages ${stage}..${stop_stage} of ${method}${tag:+ (${tag})}"
