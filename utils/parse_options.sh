# Kaldi-style option parsing, sourced by a script after its variables with defaults:
#
#   stage=1
#   stop_stage=100
#   use_gpu=false
#   help_message="Usage: $0 [options] <data-dir>"
#   . utils/parse_options.sh
#
# Then `--stop-stage 3` or `--stop_stage 3` sets stop_stage=3 (also `--stop-stage=3`). Only
# variables the script declared can be set, so a misspelt option fails (exit 1) instead of being
# ignored; an option whose default is true/false takes only true/false. `--config FILE` sources
# FILE, a list of name=value lines for declared variables, at that point of the command line.
# `--help` prints $help_message. Parsing stops at the first non-option or at `--`; the
# remaining arguments are left in "$@". Works under `set -euo pipefail`.

__po_fail() {
  echo "$0: $*" >&2
  exit 1
}

# Succeeds when $1 names a variable the calling script has set.
__po_declared() {
  [[ "$1" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] && [ -n "${!1+set}" ]
}

# Locals carry a __po_ prefix so they never shadow the caller's variables of the same name.
__po_set() {
  local __po_var=$1 __po_value=$2 __po_option=$3
  __po_declared "$__po_var" \
    || __po_fail "unknown option $__po_option (no variable '$__po_var' in this script)"
  case "${!__po_var}" in
    true|false)
      case "$__po_value" in
        true|false) ;;
        *) __po_fail "option $__po_option takes true or false, got '$__po_value'" ;;
      esac ;;
  esac
  printf -v "$__po_var" '%s' "$__po_value"
}

# Check a --config file names only declared variables before sourcing it, so a typo there
# fails as loudly as one on the command line.
__po_source_config() {
  local __po_file=$1 __po_line __po_lineno=0 __po_var
  [ -f "$__po_file" ] || __po_fail "--config: file '$__po_file' not found"
  while IFS= read -r __po_line || [ -n "$__po_line" ]; do
    __po_lineno=$((__po_lineno + 1))
    [[ "$__po_line" =~ ^[[:space:]]*(#|$) ]] && continue
    [[ "$__po_line" =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)= ]] \
      || __po_fail "$__po_file:$__po_lineno: expected name=value, got: $__po_line"
    __po_var=${BASH_REMATCH[1]}
    __po_declared "$__po_var" || __po_fail "$__po_file:$__po_lineno: unknown option '$__po_var'"
  done < "$__po_file"
  # shellcheck disable=SC1090
  . "$__po_file"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      # Asked-for help is the output, not an error: stdout, so `--help | less` works.
      if [ -n "${help_message:-}" ]; then
        printf '%s\n' "$help_message"
      else
        echo "Usage: $0 [--option value ...] (options are the variables set at the top of $0)"
      fi
      exit 0 ;;
    --)
      shift
      break ;;
    --config)
      [ $# -ge 2 ] || __po_fail "option --config needs a file"
      __po_source_config "$2"
      shift 2 ;;
    --config=*)
      __po_source_config "${1#--config=}"
      shift ;;
    --*=*)
      __po_name=${1%%=*}
      __po_name=${__po_name#--}
      __po_set "${__po_name//-/_}" "${1#*=}" "${1%%=*}"
      shift ;;
    --?*)
      [ $# -ge 2 ] || __po_fail "option $1 needs a value"
      __po_name=${1#--}
      __po_set "${__po_name//-/_}" "$2" "$1"
      shift 2 ;;
    *)
      break ;;
  esac
done
unset -v __po_name
unset -f __po_fail __po_declared __po_set __po_source_config
true
