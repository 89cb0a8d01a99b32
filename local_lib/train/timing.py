"""Wall-clock seconds per named part of a training step, and their split over a run.

A loop wraps each part of a step in ``with timer("time/rollout"):``; the Trainer, given the same
timer, adds the backward and optimizer step to ``time/update`` and the whole step as
``time/step``, takes the step's sums into that step's metrics, and logs the run's split at the
end. One clock for every part, so the parts of a step never add up to more than its wall time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

STEP_KEY = "time/step"
"""The whole step's seconds, of which the named parts are shares."""
UPDATE_KEY = "time/update"
"""The update's seconds: the Trainer's backward and optimizer step, and the loop's loss."""


class StepTimer:
    """Sums the seconds spent in named sections: ``take()`` returns the sums since the last take
    (one step's split, for its metrics), ``totals`` the sums of this process's run."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.totals: dict[str, float] = {}
        self.steps = 0  # takes so far
        self._current: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = self.clock()
        try:
            yield
        finally:
            spent = self.clock() - start
            self._current[name] = self._current.get(name, 0.0) + spent
            self.totals[name] = self.totals.get(name, 0.0) + spent

    def take(self) -> dict[str, float]:
        """The sections' seconds since the last take, and start the next step's."""
        current, self._current = self._current, {}
        self.steps += 1
        return current


def split_summary(totals: Mapping[str, float], parts: Sequence[str], steps: int) -> str:
    """One line: each part's seconds and share of ``time/step``, the rest as ``other``, e.g.
    ``rollout 6.0 s (60 %), score 2.0 s (20 %), update 1.0 s (10 %), other 1.0 s (10 %) of
    10.0 s in 5 steps (2.00 s/step)``."""
    whole = totals.get(STEP_KEY, 0.0)
    share = 100.0 / whole if whole > 0 else 0.0
    cells = []
    for part in parts:
        seconds = totals.get(part, 0.0)
        cells.append(f"{part.removeprefix('time/')} {seconds:.1f} s ({seconds * share:.0f} %)")
    other = whole - sum(totals.get(part, 0.0) for part in parts)
    cells.append(f"other {other:.1f} s ({other * share:.0f} %)")
    per_step = whole / steps if steps else 0.0
    return f"{', '.join(cells)} of {whole:.1f} s in {steps} steps ({per_step:.2f} s/step)"
