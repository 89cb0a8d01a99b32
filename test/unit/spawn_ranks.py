"""Two-process CPU tests: spawn the ranks, tolerating only a gloo rank that aborts at exit after
its work is done.

A gloo rank can die with SIGABRT ("terminate called without an active exception") while the
process group is torn down at exit, even after the barrier in ``local_lib.train.distributed
.cleanup``; it is rare, and seen only under load. What the tests check is written by each rank
before it leaves the group, so such an abort is accepted when every rank's result file exists;
any other failure, or an abort before the results, still fails the test.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

import torch.multiprocessing
from torch.multiprocessing import ProcessExitedException

log = logging.getLogger(__name__)


def spawn_ranks(
    worker: Callable[..., None], args: tuple, nprocs: int, results: Sequence[Path]
) -> None:
    """``torch.multiprocessing.spawn(worker, args, nprocs)``; ``results`` are the files the ranks
    write before leaving the process group."""
    try:
        torch.multiprocessing.spawn(worker, args=args, nprocs=nprocs)
    except ProcessExitedException as err:
        aborted = err.signal_name == signal.Signals.SIGABRT.name
        if not aborted or not all(Path(p).is_file() for p in results):
            raise
        log.warning("rank %d aborted at exit after writing its results: %s", err.error_index, err)
