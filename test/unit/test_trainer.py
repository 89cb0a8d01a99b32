"""Trainer: an interrupted and resumed run ends bitwise equal to an uninterrupted one."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from spawn_ranks import spawn_ranks
from torch import nn

from local_lib.train.distributed import DistInfo, cleanup
from local_lib.train.trainer import (
    METRICS_FILE,
    Trainer,
    TrainerConfig,
    read_metrics,
    seed_everything,
)

SINGLE = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
DATA_X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
DATA_Y = DATA_X @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])


class Interrupt(Exception):
    """Raised by a test batch source to stop training as a crash would."""


def _trainer(out_dir: Path, num_steps: int, seed: int = 0) -> Trainer:
    seed_everything(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.2), nn.Tanh(), nn.Linear(16, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    cfg = TrainerConfig(out_dir, num_steps, grad_accum=2, grad_clip=0.5, save_every=3, log_every=2)
    return Trainer(model, opt, cfg, sched, dist_info=SINGLE)


def _next_batch(micro_step: int) -> tuple[torch.Tensor, torch.Tensor]:
    # randomness from all three global RNGs, so resume must restore each of them
    idx = torch.randint(0, 64, (8,))
    idx = (idx + int(np.random.randint(0, 64)) + random.randrange(64)) % 64
    return DATA_X[idx], DATA_Y[idx]


def _loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    x, y = batch
    err = model(x) - y
    return (err**2).mean(), {"mae": float(err.detach().abs().mean())}


def test_resume_after_interruption_is_bitwise_identical(tmp_path: Path) -> None:
    full = _trainer(tmp_path / "full", num_steps=8)
    assert full.fit(_loss, _next_batch) == 8

    crashing = _trainer(tmp_path / "resumed", num_steps=8)
    calls = {"n": 0}

    def crash_in_step_5(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]):
        calls["n"] += 1
        if calls["n"] > 2 * 4:  # two micro-batches per step: dies inside step 5
            raise Interrupt
        return _loss(model, batch)

    with pytest.raises(Interrupt):
        crashing.fit(crash_in_step_5, _next_batch)
    assert crashing.step == 4  # last checkpoint is step 3; step 4 is lost with the crash

    # a fresh process: another model init and other RNG states, all replaced by the checkpoint
    resumed = _trainer(tmp_path / "resumed", num_steps=8, seed=123)
    torch.manual_seed(999)
    assert resumed.resume() == 3
    assert resumed.fit(_loss, _next_batch) == 8
    for a, b in zip(full.raw_model.parameters(), resumed.raw_model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert resumed.optimizer.param_groups[0]["lr"] == full.optimizer.param_groups[0]["lr"]
    # step 4 was logged before the crash and again after the resume: the later record counts
    full_metrics = read_metrics(tmp_path / "full" / METRICS_FILE)
    assert [r["step"] for r in full_metrics] == [2, 4, 6, 8]
    assert read_metrics(tmp_path / "resumed" / METRICS_FILE) == full_metrics
    assert (tmp_path / "resumed" / METRICS_FILE).read_text().count('"step": 4,') == 2


def test_logs_tensorboard_and_checkpoints(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, num_steps=4)
    trainer.fit(_loss, _next_batch)
    log = (tmp_path / "train.log").read_text(encoding="utf-8")
    assert "step 2/4 loss" in log and "grad_norm" in log and "mae" in log
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "checkpoint_00000003.pt",
        "checkpoint_00000004.pt",
    ]
    # a finished run resumes to its end and does nothing more
    again = _trainer(tmp_path, num_steps=4)
    assert again.fit(_loss, _next_batch) == 4


def test_a_broken_metrics_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / METRICS_FILE
    path.write_text('{"step": 1, "loss": 2.0}\n{"loss": 1.0}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a metrics record"):
        read_metrics(path)


def test_gradient_accumulation_matches_one_big_batch(tmp_path: Path) -> None:
    def run(accum: int, sub: Path) -> nn.Module:
        seed_everything(0)
        model = nn.Linear(4, 1)
        cfg = TrainerConfig(tmp_path / sub, 1, grad_accum=accum, grad_clip=None)
        trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), cfg, dist_info=SINGLE)
        size = 16 // accum
        trainer.fit(
            lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(),
            lambda i: (DATA_X[i * size : (i + 1) * size], DATA_Y[i * size : (i + 1) * size]),
        )
        return model

    one, four = run(1, Path("a")), run(4, Path("b"))
    torch.testing.assert_close(one.weight, four.weight)


def test_non_finite_loss_raises(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, num_steps=2)
    with pytest.raises(FloatingPointError, match="step 1"):
        trainer.fit(lambda m, b: torch.tensor(float("nan"), requires_grad=True), _next_batch)


def _ddp_worker(rank: int, init_file: str, out_dir: str, result_file: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    info = DistInfo(rank=rank, world_size=2, local_rank=rank, device=torch.device("cpu"))
    seed_everything(0)
    model = nn.Linear(4, 1)
    cfg = TrainerConfig(Path(out_dir), 3, grad_clip=1.0, save_every=3)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), cfg, dist_info=info)
    assert isinstance(trainer.model, nn.parallel.DistributedDataParallel)
    half = slice(rank * 8, rank * 8 + 8)  # each rank sees different data
    trainer.fit(lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), lambda i: (DATA_X[half], DATA_Y[half]))
    torch.save(model.state_dict(), f"{result_file}.{rank}")
    cleanup()


@pytest.mark.slow  # two spawned processes each import torch: tens of seconds on 2 cores
def test_ddp_on_cpu_keeps_ranks_in_sync(tmp_path: Path) -> None:
    spawn_ranks(
        _ddp_worker,
        (str(tmp_path / "init"), str(tmp_path / "run"), str(tmp_path / "w")),
        2,
        [tmp_path / f"w.{r}" for r in (0, 1)],
    )
    rank0, rank1 = (torch.load(tmp_path / f"w.{r}") for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == [
        "checkpoint_00000003.pt"
    ]
    seed_everything(0)
    assert not torch.equal(rank0["weight"], nn.Linear(4, 1).weight)  # training moved it
