# Activates tools/venv and makes local_lib and utils/ reachable from a recipe directory.
MAIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
. "${MAIN_ROOT}/tools/activate_python.sh"
export PATH="${PWD}/utils:${PATH}" PYTHONPATH="${MAIN_ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
export LC_ALL=C PYTHONUNBUFFERED=1
# A job is one CPU thread: jobs run side by side (stage 3's models beside stage 4, the JOB arrays).
# numba's OpenMP threads (MAS in Grad-TTS training) otherwise spin on a second core the whole run,
# taking it from the jobs beside them without speeding their own. Set either variable to override.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} NUMBA_NUM_THREADS=${NUMBA_NUM_THREADS:-1}
