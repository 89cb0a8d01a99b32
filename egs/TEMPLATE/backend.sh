# Maps cmd_backend (set in a recipe's cmd.sh) to the job launchers the stages use. "slurm" maps
# sbatch options through conf/slurm.conf, or utils/slurm.conf when the recipe has none.
case "${cmd_backend}" in
  local) train_cmd=utils/run.pl; cuda_cmd=utils/run.pl ;;
  slurm) train_cmd=utils/slurm.pl; cuda_cmd="utils/slurm.pl --gpu 1" ;;
  *) echo "cmd.sh: cmd_backend must be local or slurm, not '${cmd_backend}'" >&2; return 1 ;;
esac
export train_cmd cuda_cmd
