#!/usr/bin/env bash
# Builds tools/venv (Python >= 3.12, pinned packages, local_lib in editable mode) and installs the
# system packages the recipes need. Safe to run again: finished steps are skipped.
#
#   tools/setup.sh                 # venv + espeak-ng (for the mini corpora)
#   tools/setup.sh --with-slurm    # also slurm-wlm + munge (the tests start a one-node Slurm)
#   PYTHON=/path/to/python3.12 tools/setup.sh
set -euo pipefail

with_slurm=false
for arg in "$@"; do
  case "$arg" in
    --with-slurm) with_slurm=true ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "tools/setup.sh: unknown option '$arg' (see --help)" >&2; exit 1 ;;
  esac
done

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(dirname "$tools_dir")
venv="$tools_dir/venv"

log() { echo "[setup] $*"; }

find_python() {
  local candidates=()
  [ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
  candidates+=(python3.14 python3.13 python3.12)
  if command -v pyenv >/dev/null 2>&1; then
    local v
    for v in $(pyenv versions --bare 2>/dev/null | sort -rV); do
      candidates+=("$(pyenv prefix "$v" 2>/dev/null)/bin/python3")
    done
  fi
  candidates+=(python3)
  local py
  for py in "${candidates[@]}"; do
    if command -v "$py" >/dev/null 2>&1 &&
       "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
      command -v "$py"
      return 0
    fi
  done
  return 1
}

apt_install() {
  # Installs the Debian packages that are missing; prints what to do when we cannot.
  local missing=() pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[setup] missing system packages: ${missing[*]}" >&2
    echo "[setup] install them as root (sudo apt-get install ${missing[*]}) or ask your admin;" >&2
    echo "[setup] without root, 'pip install espeakng-loader' in tools/venv ships espeak-ng's library." >&2
    return 1
  fi
}

apt_install espeak-ng
if $with_slurm; then
  apt_install slurm-wlm munge
fi

if [ ! -x "$venv/bin/python" ]; then
  if ! python=$(find_python); then
    echo "[setup] no Python >= 3.12 found. Install one (e.g. 'pyenv install 3.12') or point" >&2
    echo "[setup] PYTHON at it: PYTHON=/path/to/python3.12 tools/setup.sh" >&2
    exit 1
  fi
  log "creating $venv with $python ($("$python" --version))"
  "$python" -m venv "$venv"
fi

# The stamp holds a hash of the pins: a second run with the same pins installs nothing.
stamp="$venv/.installed"
want=$(cat "$tools_dir/requirements.txt" "$tools_dir/constraints.txt" "$repo_root/setup.cfg" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  log "tools/venv is up to date"
else
  log "installing pinned packages into tools/venv (a few minutes, ~6.5 GB)"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$tools_dir/requirements.txt" -c "$tools_dir/constraints.txt"
  "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$repo_root"
  echo "$want" > "$stamp"
fi
"$venv/bin/python" -c 'import torch, torchaudio, espnet, numba, kaldiio, local_lib' ||
  { echo "[setup] tools/venv is broken: remove it and run tools/setup.sh again" >&2; exit 1; }
log "done: recipes activate it through their path.sh (tools/activate_python.sh)"
