# Sourced by every recipe's path.sh: puts tools/venv first on PATH.
_tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ ! -x "${_tools_dir}/venv/bin/python" ]; then
  echo "tools/venv is missing: run ${_tools_dir}/setup.sh first" >&2
  return 1
fi
# shellcheck disable=SC1091
. "${_tools_dir}/venv/bin/activate"
unset _tools_dir
