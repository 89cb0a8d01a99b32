#!/usr/bin/env bash
# Set-up (with the local Slurm the shell tests start), flake8 and the whole test suite: what CI
# runs.
# Extra arguments go to pytest, e.g. test/run_all.sh -m "not slow".
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${repo_root}"
tools/setup.sh --with-slurm
# The linter first (settings in setup.cfg); the tests run whatever it finds, and both count.
lint_rc=0
tools/venv/bin/python -m flake8 local_lib test utils || lint_rc=$?
[ "${lint_rc}" -eq 0 ] || echo "run_all.sh: flake8 found problems (listed above)" >&2
rc=0
tools/venv/bin/python -m pytest "$@" || rc=$?
if [ "${rc}" -eq 5 ]; then
  echo "run_all.sh: pytest collected no tests, which counts as a failure" >&2
  exit 1
fi
[ "${rc}" -ne 0 ] || rc=${lint_rc}
exit "${rc}"
