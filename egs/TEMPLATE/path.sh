# Activates tools/venv and makes local_lib and utils/ reachable from a recipe directory.
# A recipe may sit at any depth under egs/: the root is the nearest directory above it that
# holds tools/ and local_lib/ (found without resolving links, so a test's sandbox of links and
# copies is a root of its own).
MAIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
while [ ! -f "${MAIN_ROOT}/tools/activate_python.sh" ] || [ ! -d "${MAIN_ROOT}/local_lib" ]; do
  [ "${MAIN_ROOT}" != / ] || { echo "path.sh: no directory with tools/ and local_lib/ above $(pwd)" >&2; return 1; }
  MAIN_ROOT=$(dirname "${MAIN_ROOT}")
done
. "${MAIN_ROOT}/tools/activate_python.sh"
export PATH="${PWD}/utils:${PATH}" PYTHONPATH="${MAIN_ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
export LC_ALL=C PYTHONUNBUFFERED=1
# A job is one CPU thread: jobs run side by side (stage 3's models beside stage 4, the JOB arrays).
# numba's OpenMP threads (MAS in Grad-TTS training) otherwise spin on a second core the whole run,
# taking it from the jobs beside them without speeding their own. Set either variable to override.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} NUMBA_NUM_THREADS=${NUMBA_NUM_THREADS:-1}
