# Activates tools/venv and makes local_lib and utils/ reachable from a recipe directory.
MAIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
. "${MAIN_ROOT}/tools/activate_python.sh"
export PATH="${PWD}/utils:${PATH}" PYTHONPATH="${MAIN_ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
export LC_ALL=C PYTHONUNBUFFERED=1
