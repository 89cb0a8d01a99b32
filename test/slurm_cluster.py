"""Start and stop the private one-node Slurm (tools/slurm/) that the Slurm tests submit to."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SLURM_TOOLS = REPO_ROOT / "tools" / "slurm"
REQUIRED_BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "srun")
SYSTEM_SBIN = ("/usr/sbin", "/sbin")


class SlurmStartError(RuntimeError):
    """The cluster did not come up; the message carries the start script's output."""


@dataclass(frozen=True)
class SlurmCluster:
    state_dir: Path

    @property
    def conf(self) -> Path:
        """Clients (sbatch, squeue, utils/slurm.pl) find the cluster through SLURM_CONF."""
        return self.state_dir / "slurm.conf"

    def env(self) -> dict[str, str]:
        return dict(os.environ, SLURM_CONF=str(self.conf))


def _find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in SYSTEM_SBIN:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def unavailable_reason() -> str | None:
    """Why this machine cannot run the local Slurm, or None when it can."""
    if os.geteuid() != 0:
        return "the local Slurm needs root (slurmd runs jobs as their owner); run the tests as root"
    missing = [name for name in REQUIRED_BINARIES if _find_binary(name) is None]
    if missing:
        return (f"Slurm/munge binaries missing ({', '.join(missing)}); install the Debian packages "
                "slurm-wlm and munge (tools/setup.sh --with-slurm)")
    return None


def start_cluster(state_dir: Path, timeout_s: float = 120.0) -> SlurmCluster:
    """Run tools/slurm/start_local_slurm.sh on `state_dir` and wait until the node is idle."""
    try:
        proc = subprocess.run(
            [str(SLURM_TOOLS / "start_local_slurm.sh"), str(state_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as err:
        stop_cluster(SlurmCluster(state_dir))
        raise SlurmStartError(f"start_local_slurm.sh did not finish in {timeout_s:.0f} s: "
                              f"{err.output}") from None
    if proc.returncode != 0:
        stop_cluster(SlurmCluster(state_dir))
        raise SlurmStartError(
            f"start_local_slurm.sh failed (exit {proc.returncode}):\n{proc.stdout}"
        )
    return SlurmCluster(state_dir)


def stop_cluster(cluster: SlurmCluster) -> None:
    """Cancel the cluster's jobs and stop its daemons (by their pid files only)."""
    subprocess.run([str(SLURM_TOOLS / "stop_local_slurm.sh"), str(cluster.state_dir)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)
