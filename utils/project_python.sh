# Sourced by the utils/ wrappers of local_lib tools: the project's Python (tools/venv) and
# local_lib, found from this file's place, so a tool works without sourcing a recipe's path.sh.
_project_root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
. "${_project_root}/tools/activate_python.sh" || exit 1
export PYTHONPATH="${_project_root}${PYTHONPATH:+:${PYTHONPATH}}"
unset _project_root
