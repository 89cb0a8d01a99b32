#!/usr/bin/env bash
# Thin wrapper: python -m local_lib.bin.combine_data in the project's Python (utils/project_python.sh).
set -euo pipefail
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/project_python.sh"
exec python -m local_lib.bin.combine_data "$@"
