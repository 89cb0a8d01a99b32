#!/usr/bin/env bash
# data/{train,dev} from LibriTTS and data/test from the seed-tts-eval English list; the mini
# corpora stand in for either root that is not given.
set -euo pipefail
libritts_root=${LIBRITTS:-}
seedtts_root=${SEEDTTS:-}
seed=0
nj=2
help_message="Usage: $0 [--libritts_root DIR] [--seedtts_root DIR] [--seed N] [--nj N] <data-dir>"
. utils/parse_options.sh
[ $# -eq 1 ] || { echo "${help_message}" >&2; exit 1; }

if [ -z "${libritts_root}" ]; then
  libritts_root=downloads/mini_libritts
  python -m local_lib.bin.make_mini_corpus --corpus mini_libritts --out-dir "${libritts_root}" --seed "${seed}" --nj "${nj}"
fi
if [ -z "${seedtts_root}" ]; then
  seedtts_root=downloads/mini_seedtts
  python -m local_lib.bin.make_mini_corpus --corpus mini_seedtts --out-dir "${seedtts_root}" --seed "${seed}" --nj "${nj}"
fi
# The LibriTTS preparer writes a test set too; data/test is the seed-tts-eval list's, so the test
# dir is cleared before (an earlier run's list) and after (LibriTTS's own) that preparer.
rm -rf "$1/test"
python -m local_lib.bin.prepare_data --corpus libritts --root "${libritts_root}" --out-dir "$1"
rm -rf "$1/test"
python -m local_lib.bin.prepare_data --corpus seedtts --root "${seedtts_root}" --lang en --out-dir "$1/test"
