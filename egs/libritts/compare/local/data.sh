#!/usr/bin/env bash
# data/{train,dev,test} from LibriTTS subsets, or from mini_libritts when no root is given.
set -euo pipefail
libritts_root=${LIBRITTS:-}
seed=0
nj=2
help_message="Usage: $0 [--libritts_root DIR] [--seed N] [--nj N] <data-dir>"
. utils/parse_options.sh
[ $# -eq 1 ] || { echo "${help_message}" >&2; exit 1; }

if [ -z "${libritts_root}" ]; then
  libritts_root=downloads/mini_libritts
  python -m local_lib.bin.make_mini_corpus --corpus mini_libritts --out-dir "${libritts_root}" --seed "${seed}" --nj "${nj}"
fi
python -m local_lib.bin.prepare_data --corpus libritts --root "${libritts_root}" --out-dir "$1"
