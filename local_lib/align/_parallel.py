"""How the batch kernels use numba's threads: one item at a time, an optional thread cap."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba


@contextmanager
def kernel_threads(num_threads: int | None) -> Iterator[None]:
    """Hand items out one by one (their sizes differ a lot) on at most ``num_threads`` threads.

    ``None`` keeps numba's current setting (all cores unless NUMBA_NUM_THREADS says otherwise).
    A cap of 1 avoids fighting a busy torch thread pool on a machine with few cores.
    """
    previous = numba.get_num_threads()
    if num_threads is not None:
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        numba.set_num_threads(min(num_threads, numba.config.NUMBA_NUM_THREADS))
    try:
        with numba.parallel_chunksize(1):
            yield
    finally:
        numba.set_num_threads(previous)
