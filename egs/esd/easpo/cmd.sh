# Where the parallel stages run: local (utils/run.pl) or slurm (utils/slurm.pl, sbatch arrays).
cmd_backend=${cmd_backend:-local}
. ../../TEMPLATE/backend.sh
