#!/usr/bin/env bash
# Launch a multi-process (DDP) training module with torchrun, on this node or across the nodes
# of a Slurm allocation.
#
# Usage: utils/launch.sh [options] -- <python module> [module args...]
#   e.g. utils/launch.sh --nproc 2 -- local_lib.bin.dist_check --out exp/dist_check.json
#        ${cuda_cmd} --gpu 4 exp/log/train.log utils/launch.sh --nproc 4 -- local_lib.bin.train ...
#
# Options:
#   --nproc N        processes per node (one per GPU; on CPU any number, gloo backend)
#   --nnodes M       nodes (M > 1 needs a Slurm allocation of M nodes)
#   --use-srun auto|true|false
#                    auto: srun when inside a Slurm job (SLURM_JOB_ID set) and M > 1
#   --port P         c10d rendezvous port on the first node (default: 29400 + job id mod 1000)
#   --python PY      interpreter (default: python from PATH, as set up by path.sh)
#
# Locally it runs `python -m torch.distributed.run --standalone --nproc-per-node N -m <module>`.
# Under srun it starts one torchrun per node (srun --ntasks-per-node 1), all meeting at the
# first host of the allocation (scontrol show hostnames) with --node-rank $SLURM_NODEID.
set -euo pipefail

nproc=1
nnodes=1
use_srun=auto
port=""
python=$(command -v python || command -v python3 || echo python3)
help_message=$(sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//')
. "$(dirname "${BASH_SOURCE[0]}")/parse_options.sh"

die() { echo "$0: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "no module given; usage: $0 [options] -- <python module> [args...]"
[[ "$nproc" =~ ^[1-9][0-9]*$ ]] || die "--nproc must be a positive integer, got '$nproc'"
[[ "$nnodes" =~ ^[1-9][0-9]*$ ]] || die "--nnodes must be a positive integer, got '$nnodes'"
case "$use_srun" in
  auto)
    use_srun=false
    [ -n "${SLURM_JOB_ID:-}" ] && [ "$nnodes" -gt 1 ] && use_srun=true ;;
  true|false) ;;
  *) die "--use-srun takes auto, true or false, got '$use_srun'" ;;
esac
module=$1
shift

if [ "$use_srun" = false ]; then
  [ "$nnodes" -eq 1 ] || die "--nnodes $nnodes needs a Slurm allocation (run it under slurm.pl)"
  exec "$python" -m torch.distributed.run --standalone --nnodes 1 --nproc-per-node "$nproc" \
    -m "$module" "$@"
fi

[ -n "${SLURM_JOB_ID:-}" ] || die "--use-srun true outside a Slurm job (SLURM_JOB_ID unset)"
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
[ -n "$head_node" ] \
  || die "cannot read the first host of SLURM_JOB_NODELIST='${SLURM_JOB_NODELIST:-}'"
port=${port:-$((29400 + SLURM_JOB_ID % 1000))}
step_opts=(--nodes "$nnodes" --ntasks "$nnodes" --ntasks-per-node 1 --kill-on-bad-exit=1)
# Since Slurm 22.05 srun no longer inherits the job's --cpus-per-task; pass it on explicitly.
[ -n "${SLURM_CPUS_PER_TASK:-}" ] && step_opts+=(--cpus-per-task "$SLURM_CPUS_PER_TASK")
echo "$0: srun ${step_opts[*]} torchrun --nnodes $nnodes --nproc-per-node $nproc" \
  "--rdzv-endpoint $head_node:$port -m $module $*" >&2
# SLURM_NODEID differs per node, so it is read inside each srun task.
# shellcheck disable=SC2016
exec srun "${step_opts[@]}" bash -c \
  'py=$1; shift; exec "$py" -m torch.distributed.run --node-rank "$SLURM_NODEID" "$@"' \
  launch.sh "$python" --nnodes "$nnodes" --nproc-per-node "$nproc" --rdzv-backend c10d \
  --rdzv-id "$SLURM_JOB_ID" --rdzv-endpoint "$head_node:$port" -m "$module" "$@"
