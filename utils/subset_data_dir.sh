#!/usr/bin/env bash
# Thin wrapper: python -m local_lib.bin.subset_data_dir with the repository on PYTHONPATH.
# Recipes reach this through their utils symlink; path.sh puts tools/venv's python on PATH.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
export PYTHONPATH="${root}${PYTHONPATH:+:${PYTHONPATH}}"
exec python -m local_lib.bin.subset_data_dir "$@"
