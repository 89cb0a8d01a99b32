#!/usr/bin/env bash
# Start a recipe for a new corpus (or method) from an existing one.
#
# Usage: utils/copy_recipe.sh <src_recipe_dir> <dst_recipe_dir>
#   e.g. utils/copy_recipe.sh egs/esd/easpo egs/mycorpus/easpo
#
# Copies run.sh, cmd.sh, db.sh, conf/ and local/, re-points the links to the shared pieces
# (path.sh, tts_rl.sh) and makes dst/utils a relative symlink to this repository's utils/.
# <dst_recipe_dir> is a new directory at any depth under this repository's egs/ (path.sh finds
# tools/ and local_lib/ above it). Never copies data/, dump/ or exp/ (outputs of a run).
set -euo pipefail

die() { echo "$0: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 <src_recipe_dir> <dst_recipe_dir>"
src=${1%/}
dst=${2%/}
[ -d "$src" ] || die "source recipe '$src' is not a directory"
[ -f "$src/run.sh" ] || die "'$src' has no run.sh; is it a recipe directory?"
[ -e "$dst" ] || [ -L "$dst" ] && die "'$dst' already exists; pick a new directory"

# Paths are compared and linked as written (realpath -s), not through their links, so a
# repository made of links (a test's sandbox) gets links inside itself.
utils_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
egs_dir=$(dirname "${utils_dir}")/egs
src_abs=$(cd "$src" && pwd)
if [[ "$dst" == /* ]]; then dst_abs=$(realpath -sm "$dst"); else dst_abs=$(realpath -sm "$PWD/$dst"); fi
case "${dst_abs}" in
  "${egs_dir}"/TEMPLATE | "${egs_dir}"/TEMPLATE/*) die "'$dst' is inside egs/TEMPLATE, the shared pipeline" ;;
  "${src_abs}"/*) die "'$dst' is inside the source recipe '$src'" ;;
  "${egs_dir}"/?*) ;;
  *) die "'$dst' is not under ${egs_dir}/: a recipe needs the repository's tools/, utils/ and local_lib/ above it" ;;
esac

mkdir -p "$dst"
copied=()
for item in run.sh cmd.sh path.sh tts_rl.sh db.sh conf local; do
  if [ -L "$src/$item" ]; then
    # Shared pieces (path.sh, tts_rl.sh) stay links, re-pointed from the new place.
    target=$(readlink "$src/$item")
    [[ "${target}" == /* ]] || target="${src_abs}/${target}"
    ln -s "$(realpath -sm --relative-to="$dst_abs" "${target}")" "$dst/$item"
    copied+=("$item")
  elif [ -e "$src/$item" ]; then
    cp -a "$src/$item" "$dst/$item"
    copied+=("$item")
  else
    echo "$0: warning: '$src/$item' not found, not copied" >&2
  fi
done
ln -s "$(realpath -sm --relative-to="$dst_abs" "$utils_dir")" "$dst/utils"

cat <<MSG
Created $dst from $src (copied: ${copied[*]}; utils -> $(readlink "$dst/utils")).
Next, edit for the new corpus:
  $dst/local/data.sh   write Kaldi data dirs data/{train,dev,test} for your corpus (stage 1)
  $dst/db.sh           set the corpus root: NAME=DIR (run.sh then takes --name_root DIR, lower case)
  $dst/conf/           adjust model and training configs (and conf/slurm.conf for your cluster)
Then run: cd $dst && ./run.sh --stage 1 --stop-stage 1
MSG
