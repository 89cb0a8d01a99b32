"""The step timer and the run's time split, on a fake clock with numbers worked out by hand."""

from __future__ import annotations

import pytest

from local_lib.train.timing import StepTimer, split_summary


class FakeClock:
    """Each reading is the next value of a fixed list."""

    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def __call__(self) -> float:
        return self.readings.pop(0)


def test_sections_sum_per_step_and_over_the_run() -> None:
    timer = StepTimer(FakeClock(0.0, 1.5, 2.0, 2.25, 3.0, 3.5, 10.0, 14.0))
    ran = []
    for name in ("time/rollout", "time/score", "time/rollout"):  # 1.5 s, 0.25 s, 0.5 s more
        with timer(name):
            ran.append(name)
    assert ran == ["time/rollout", "time/score", "time/rollout"]
    assert timer.take() == {"time/rollout": 2.0, "time/score": 0.25}
    with pytest.raises(RuntimeError), timer("time/update"):  # 4 s, counted though it raised
        raise RuntimeError("a failing part still spent its time")
    assert timer.take() == {"time/update": 4.0}
    assert timer.take() == {}
    assert timer.steps == 3
    assert timer.totals == {"time/rollout": 2.0, "time/score": 0.25, "time/update": 4.0}


def test_split_summary_by_hand() -> None:
    totals = {"time/step": 10.0, "time/rollout": 6.0, "time/score": 2.0, "time/update": 1.0}
    line = split_summary(totals, ["time/rollout", "time/score", "time/update"], steps=5)
    assert line == (
        "rollout 6.0 s (60 %), score 2.0 s (20 %), update 1.0 s (10 %), other 1.0 s (10 %) "
        "of 10.0 s in 5 steps (2.00 s/step)"
    )
    # no time recorded: zero shares, no division by zero
    assert split_summary({}, ["time/rollout"], steps=0) == (
        "rollout 0.0 s (0 %), other 0.0 s (0 %) of 0.0 s in 0 steps (0.00 s/step)"
    )
