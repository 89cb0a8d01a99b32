"""Process-group set-up for training under torchrun (utils/launch.sh), or none at all.

Training code calls `init_distributed()` once at start and `cleanup()` at the end. Launched by
torchrun (RANK/WORLD_SIZE/LOCAL_RANK in the environment) it joins the process group: NCCL with
one GPU per process when CUDA is available, gloo on CPU, so the same DDP code runs on a laptop
and on a GPU cluster. Run plainly it is a single process and touches nothing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

_LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job and which device it should use."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and results."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def init_distributed(backend: str | None = None, timeout_s: float = 1800.0) -> DistInfo:
    """Join the torchrun process group if launched by torchrun, else describe one process.

    `backend` overrides the choice (nccl with CUDA, gloo without). Calling it again in a
    process that already joined returns the same description.
    """
    present = [name for name in _LAUNCH_VARS if name in os.environ]
    if not present:
        device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
        return DistInfo(rank=0, world_size=1, local_rank=0, device=device)
    if len(present) != len(_LAUNCH_VARS):
        missing = sorted(set(_LAUNCH_VARS) - set(present))
        raise RuntimeError(
            f"incomplete torchrun environment: {', '.join(present)} set but "
            f"{', '.join(missing)} missing; launch with utils/launch.sh"
        )
    rank, world_size, local_rank = (_env_int(name) for name in _LAUNCH_VARS)
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        chosen = backend or ("nccl" if use_cuda else "gloo")
        dist.init_process_group(backend=chosen, timeout=timedelta(seconds=timeout_s))
        logger.info("rank %d/%d joined the %s process group on %s", rank, world_size, chosen,
                    device)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def cleanup() -> None:
    """Leave the process group once every rank has arrived (a no-op for a single process).

    The barrier matters: a gloo rank that tears its group down while a peer is still working
    (rank 0 writing the last checkpoint, say) can abort at exit with SIGABRT."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
