"""The two-process helper accepts a SIGABRT only after every rank wrote its result."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from spawn_ranks import spawn_ranks
from torch.multiprocessing import ProcessExitedException


def _write_then_abort(rank: int, out: str) -> None:
    Path(f"{out}.{rank}").write_text("done")
    if rank == 1:
        deadline = time.monotonic() + 120.0  # abort once rank 0 is done too, as at teardown
        while not Path(f"{out}.0").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.abort()


def _abort_before_writing(rank: int, out: str) -> None:
    if rank == 1:
        os.abort()
    Path(f"{out}.{rank}").write_text("done")


def _fail(rank: int, out: str) -> None:
    Path(f"{out}.{rank}").write_text("done")
    if rank == 1:
        raise SystemExit(3)


@pytest.mark.slow  # each spawned process imports torch
def test_an_abort_is_tolerated_only_after_the_results(tmp_path: Path) -> None:
    out = str(tmp_path / "r")
    results = [tmp_path / f"r.{k}" for k in (0, 1)]
    spawn_ranks(_write_then_abort, (out,), 2, results)  # no error: the work was done
    for path in results:
        path.unlink()
    with pytest.raises(ProcessExitedException):
        spawn_ranks(_abort_before_writing, (out,), 2, results)
    with pytest.raises(ProcessExitedException):
        spawn_ranks(_fail, (out,), 2, [tmp_path / "never"])
    with pytest.raises(ProcessExitedException):  # an exit code, not an abort, even with results
        spawn_ranks(_fail, (out,), 2, results)
