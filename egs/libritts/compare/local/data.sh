#!/usr/bin/env bash
# data/{train,dev,test} from LibriTTS subsets, or from mini_libritts when no root is given; and
# data/train_asr, the reward ASR's larger training set (tts_rl.sh --reward_asr_train_set): train
# plus the ASR-only mini corpus mini_asr, or with a root its train-clean-360 (and
# train-clean-100 when there); absent when the root has no train-clean-360.
set -euo pipefail
libritts_root=${LIBRITTS:-}
# mini_asr is built once and shared by every recipe: under db.sh's mini_asr_dir, by default
# <repository root>/downloads/mini_asr, one build per seed (seed<N>/).
mini_asr_dir=$(. ./db.sh && echo "${mini_asr_dir:-}")
seed=0
nj=2
help_message="Usage: $0 [--libritts_root DIR] [--mini_asr_dir DIR] [--seed N] [--nj N] <data-dir>"
. utils/parse_options.sh
[ $# -eq 1 ] || { echo "${help_message}" >&2; exit 1; }
. ./path.sh  # MAIN_ROOT, the repository root

asr_root=""
if [ -z "${libritts_root}" ]; then
  libritts_root=downloads/mini_libritts
  python -m local_lib.bin.make_mini_corpus --corpus mini_libritts --out-dir "${libritts_root}" --seed "${seed}" --nj "${nj}"
  asr_root=${mini_asr_dir:-${MAIN_ROOT}/downloads/mini_asr}/seed${seed}
  python -m local_lib.bin.make_mini_corpus --corpus mini_asr --out-dir "${asr_root}" --seed "${seed}" --nj "${nj}"
fi
python -m local_lib.bin.prepare_data --corpus libritts --root "${libritts_root}" --out-dir "$1"
rm -rf "$1/train_asr"
if [ -n "${asr_root}" ]; then
  python -m local_lib.bin.prepare_data --corpus libritts --root "${asr_root}" --train-only \
    --train-sets train-clean-360 --out-dir "$1/mini_asr"
  utils/combine_data.sh "$1/train_asr" "$1/train" "$1/mini_asr"
  rm -r "$1/mini_asr"
elif [ -d "${libritts_root}/train-clean-360" ]; then
  subsets=train-clean-360
  [ ! -d "${libritts_root}/train-clean-100" ] || subsets=train-clean-100,${subsets}
  python -m local_lib.bin.prepare_data --corpus libritts --root "${libritts_root}" --train-only \
    --train-sets "${subsets}" --out-dir "$1/train_asr"
else
  echo "$0: no $1/train_asr: ${libritts_root} has no train-clean-360 (--reward_asr_train_set train_asr needs it)"
fi
