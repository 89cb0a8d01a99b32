# Where the parallel stages run: local (utils/run.pl) or slurm (utils/slurm.pl, sbatch arrays).
cmd_backend=${cmd_backend:-local}
# backend.sh lies beside the file path.sh links to, whatever this recipe's depth under egs/.
. "$(dirname "$(readlink -f path.sh)")/backend.sh"
