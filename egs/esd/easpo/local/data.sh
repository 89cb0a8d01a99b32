#!/usr/bin/env bash
# data/{train,dev,test} from ESD (official split), or from mini_esd when no root is given.
set -euo pipefail
esd_root=${ESD:-}
seed=0
nj=2
help_message="Usage: $0 [--esd_root DIR] [--seed N] [--nj N] <data-dir>"
. utils/parse_options.sh
[ $# -eq 1 ] || { echo "${help_message}" >&2; exit 1; }

if [ -z "${esd_root}" ]; then
  esd_root=downloads/mini_esd
  python -m local_lib.bin.make_mini_corpus --corpus mini_esd --out-dir "${esd_root}" --seed "${seed}" --nj "${nj}"
fi
python -m local_lib.bin.prepare_data --corpus esd --root "${esd_root}" --out-dir "$1"
