#!/usr/bin/env bash
# Start a recipe for a new corpus (or method) from an existing one.
#
# Usage: utils/copy_recipe.sh <src_recipe_dir> <dst_recipe_dir>
#   e.g. utils/copy_recipe.sh egs/esd/easpo egs/mycorpus/easpo
#
# Copies run.sh, cmd.sh, path.sh, db.sh, conf/ and local/, and makes dst/utils a relative
# symlink to this repository's utils/. Never copies data/, dump/ or exp/ (outputs of a run) and
# refuses to touch an existing <dst_recipe_dir>.
set -euo pipefail

die() { echo "$0: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: $0 <src_recipe_dir> <dst_recipe_dir>"
src=${1%/}
dst=${2%/}
[ -d "$src" ] || die "source recipe '$src' is not a directory"
[ -f "$src/run.sh" ] || die "'$src' has no run.sh; is it a recipe directory?"
[ -e "$dst" ] || [ -L "$dst" ] && die "'$dst' already exists; pick a new directory"

utils_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

mkdir -p "$dst"
dst_abs=$(cd "$dst" && pwd -P)
copied=()
for item in run.sh cmd.sh path.sh tts_rl.sh db.sh conf local; do
  if [ -L "$src/$item" ]; then
    # Shared pieces (path.sh, tts_rl.sh) stay links, re-pointed from the new place.
    ln -s "$(realpath --relative-to="$dst_abs" "$(realpath "$src/$item")")" "$dst/$item"
    copied+=("$item")
  elif [ -e "$src/$item" ]; then
    cp -a "$src/$item" "$dst/$item"
    copied+=("$item")
  else
    echo "$0: warning: '$src/$item' not found, not copied" >&2
  fi
done
ln -s "$(realpath --relative-to="$dst_abs" "$utils_dir")" "$dst/utils"

cat <<MSG
Created $dst from $src (copied: ${copied[*]}; utils -> $(readlink "$dst/utils")).
Next, edit for the new corpus:
  $dst/local/data.sh   write Kaldi data dirs data/{train,dev,test} for your corpus (stage 1)
  $dst/db.sh           set the corpus root(s)
  $dst/conf/           adjust model and training configs (and conf/slurm.conf for your cluster)
Then run: cd $dst && ./run.sh --stage 1 --stop-stage 1
MSG
