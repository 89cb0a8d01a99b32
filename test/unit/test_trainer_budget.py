"""Trainer's ``budget_cpu_s``: a stop at a step boundary, counted by an injected CPU clock so the
step at which it stops is known by hand; resume carries the seconds already spent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from spawn_ranks import spawn_ranks
from torch import nn

from local_lib.train.checkpoint import latest_checkpoint, load_checkpoint
from local_lib.train.config import TrainSection
from local_lib.train.distributed import DistInfo, cleanup
from local_lib.train.trainer import METRICS_FILE, Trainer, TrainerConfig, read_metrics

SINGLE = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
X = torch.arange(8.0).reshape(4, 2)
Y = X.sum(dim=1, keepdim=True)


class FakeCpu:
    """A CPU-seconds counter that only the loss moves: ``per_step`` seconds per step."""

    def __init__(self, start: float, per_step: float) -> None:
        self.now, self.per_step = start, per_step

    def __call__(self) -> float:
        return self.now

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        self.now += self.per_step
        return ((model(batch[0]) - batch[1]) ** 2).mean()


class Interrupt(Exception):
    """A crash inside a step."""


def _trainer(out_dir: Path, clock: FakeCpu, budget: float | None, **kw) -> Trainer:
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    cfg = TrainerConfig(out_dir, 10, save_every=kw.pop("save_every", 100), log_every=2,
                        budget_cpu_s=budget, **kw)  # fmt: skip
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    return Trainer(model, optimizer, cfg, dist_info=SINGLE, cpu_clock=clock)


def _batch(_: int) -> tuple[torch.Tensor, torch.Tensor]:
    return X, Y


def _saved_cpu_s(out_dir: Path) -> float:
    path = latest_checkpoint(out_dir / "checkpoints")
    assert path is not None
    return load_checkpoint(path, nn.Linear(2, 1), restore_rng=False)[1]["cpu_s"]


def test_stops_at_the_first_step_that_reaches_the_budget(tmp_path: Path) -> None:
    clock = FakeCpu(start=500.0, per_step=10.0)  # the clock's own origin does not count
    trainer = _trainer(tmp_path, clock, budget=25.0)
    assert trainer.fit(clock.loss, _batch) == 3  # 10, 20, 30 >= 25
    records = read_metrics(tmp_path / METRICS_FILE)
    assert [(r["step"], r["cpu_s"]) for r in records] == [(2, 20.0), (3, 30.0)]
    assert latest_checkpoint(tmp_path / "checkpoints").name == "checkpoint_00000003.pt"
    assert _saved_cpu_s(tmp_path) == 30.0
    log = (tmp_path / "train.log").read_text()
    assert "stop: budget_cpu_s 25 reached at step 3/10 (30 CPU seconds spent)" in log


def test_a_budget_equal_to_the_spent_seconds_stops(tmp_path: Path) -> None:
    clock = FakeCpu(start=0.0, per_step=10.0)
    assert _trainer(tmp_path, clock, budget=20.0).fit(clock.loss, _batch) == 2


def test_resume_carries_the_seconds_spent_before(tmp_path: Path) -> None:
    clock = FakeCpu(start=0.0, per_step=10.0)
    crashing = _trainer(tmp_path, clock, budget=45.0, save_every=2)

    def crash_in_step_3(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]):
        if clock.now >= 20.0:
            raise Interrupt
        return clock.loss(model, batch)

    with pytest.raises(Interrupt):
        crashing.fit(crash_in_step_3, _batch)
    assert _saved_cpu_s(tmp_path) == 20.0  # the checkpoint of step 2

    # a new process: its clock starts elsewhere; 20 s carried, then 30, 40, 50 >= 45
    clock = FakeCpu(start=1000.0, per_step=10.0)
    resumed = _trainer(tmp_path, clock, budget=45.0, save_every=2)
    assert resumed.fit(clock.loss, _batch) == 5
    last = read_metrics(tmp_path / METRICS_FILE)[-1]
    assert (last["step"], last["cpu_s"]) == (5, 50.0)
    # a run whose budget is spent trains no further step when started again
    clock = FakeCpu(start=0.0, per_step=10.0)
    assert _trainer(tmp_path, clock, budget=45.0, save_every=2).fit(clock.loss, _batch) == 5
    assert clock.now == 0.0


def test_without_a_budget_nothing_changes(tmp_path: Path) -> None:
    clock = FakeCpu(start=0.0, per_step=10.0)
    assert _trainer(tmp_path, clock, budget=None).fit(clock.loss, _batch) == 10
    assert all("cpu_s" not in r for r in read_metrics(tmp_path / METRICS_FILE))
    assert "cpu_s" not in load_checkpoint(
        latest_checkpoint(tmp_path / "checkpoints"), nn.Linear(2, 1), restore_rng=False
    )[1]
    assert "stop:" not in (tmp_path / "train.log").read_text()


def test_the_budget_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="budget_cpu_s must be > 0"):
        TrainSection(budget_cpu_s=0.0)
    assert TrainSection(budget_cpu_s=60.0).trainer_config(tmp_path).budget_cpu_s == 60.0
    with pytest.raises(ValueError, match="budget_cpu_s must be > 0"):
        _trainer(tmp_path, FakeCpu(0.0, 1.0), budget=-1.0)


def _ddp_worker(rank: int, init_file: str, out_dir: str, result_file: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    info = DistInfo(rank=rank, world_size=2, local_rank=rank, device=torch.device("cpu"))
    clock = FakeCpu(start=0.0, per_step=5.0 * (rank + 1))  # 5 + 10 = 15 s per step in all
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    cfg = TrainerConfig(Path(out_dir), 10, log_every=1, budget_cpu_s=40.0)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), cfg, dist_info=info,
                      cpu_clock=clock)  # fmt: skip
    Path(f"{result_file}.{rank}").write_text(str(trainer.fit(clock.loss, _batch)))
    cleanup()


@pytest.mark.slow  # two spawned processes each import torch
def test_ranks_sum_their_seconds_and_stop_together(tmp_path: Path) -> None:
    spawn_ranks(
        _ddp_worker,
        (str(tmp_path / "init"), str(tmp_path / "run"), str(tmp_path / "steps")),
        2,
        [tmp_path / f"steps.{r}" for r in (0, 1)],
    )
    assert [(tmp_path / f"steps.{r}").read_text() for r in (0, 1)] == ["3", "3"]  # 15, 30, 45
    records = read_metrics(tmp_path / "run" / METRICS_FILE)
    assert [r["cpu_s"] for r in records] == [15.0, 30.0, 45.0]
