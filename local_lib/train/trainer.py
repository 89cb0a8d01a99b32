"""The training loop every stage shares: seeding, accumulation, clipping, checkpoints, logs.

Methods differ only in ``loss_fn`` (supervised CE, GRPO, ...) and ``next_batch``. For a resumed
run to repeat the uninterrupted one bit for bit, ``next_batch`` must draw its randomness from
the global RNGs (restored from the checkpoint) or derive it from the micro-step index it gets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from local_lib.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from local_lib.train.distributed import DistInfo, init_distributed
from local_lib.train.timing import STEP_KEY, UPDATE_KEY, StepTimer, split_summary

LOG = logging.getLogger(__name__)
METRICS_FILE = "metrics.jsonl"
CpuClock = Callable[[], float]
LossFn = Callable[[nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, Mapping[str, float]]"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class TrainerConfig:
    out_dir: Path
    num_steps: int
    grad_accum: int = 1
    grad_clip: float | None = 1.0  # max global grad norm; None = no clipping
    save_every: int = 100
    log_every: int = 10
    keep_checkpoints: int = 2
    # Stop at the first step boundary where the CPU seconds of this run (all ranks, earlier
    # resumed runs included) reach this; None = no budget.
    budget_cpu_s: float | None = None


class Trainer:
    """Owns the optimisation loop; ``out_dir`` gets ``checkpoints/``, ``tensorboard/``,
    ``train.log`` and ``metrics.jsonl`` (one JSON object per logged step, for plots without
    tensorboard). With ``budget_cpu_s`` each logged step also records ``cpu_s``, the CPU seconds
    spent so far (``cpu_clock``, the process's by default, summed over ranks), and the run stops
    and saves a checkpoint once they reach the budget. With a ``timer`` (the one the loss
    function times its parts with) each step also records its wall seconds (``time/step``), the
    backward and optimizer step join ``time/update``, and ``train.log`` ends with the run's
    split."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        cfg: TrainerConfig,
        scheduler: Any | None = None,
        dist_info: DistInfo | None = None,
        cpu_clock: CpuClock = time.process_time,
        timer: StepTimer | None = None,
    ) -> None:
        if cfg.grad_accum < 1 or cfg.num_steps < 1 or cfg.save_every < 1 or cfg.log_every < 1:
            raise ValueError(f"grad_accum, num_steps, save_every and log_every must be >= 1: {cfg}")
        if cfg.budget_cpu_s is not None and cfg.budget_cpu_s <= 0:
            raise ValueError(f"budget_cpu_s must be > 0 or None, got {cfg.budget_cpu_s}")
        self.cpu_clock = cpu_clock
        self.timer = timer
        self.cfg, self.optimizer, self.scheduler = cfg, optimizer, scheduler
        self.dist = dist_info or init_distributed()
        self.raw_model = model
        self.model: nn.Module = model
        if self.dist.is_distributed:
            device_ids = [self.dist.device.index] if self.dist.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        self.ckpt_dir = Path(cfg.out_dir) / "checkpoints"
        self.step = 0
        self.cpu_s_before = 0.0  # CPU seconds of the earlier runs this one resumed

    def resume(self) -> int:
        """Load the newest checkpoint if any; returns the number of completed steps."""
        found = latest_checkpoint(self.ckpt_dir)
        if found is not None:
            self.step, extra = load_checkpoint(
                found, self.raw_model, self.optimizer, self.scheduler
            )
            self.cpu_s_before = float(extra.get("cpu_s", 0.0))
        return self.step

    def _cpu_s(self, start: float) -> float:
        """CPU seconds of the whole run so far: earlier runs plus this one on every rank (the
        same number on all ranks, so they stop at the same step)."""
        spent = torch.tensor([self.cpu_clock() - start], dtype=torch.float64)
        if self.dist.is_distributed:
            if dist.get_backend() == "nccl":
                spent = spent.to(self.dist.device)
            dist.all_reduce(spent)
        return self.cpu_s_before + float(spent.item())

    def _budget_spent(self, cpu_s: float | None) -> bool:
        return cpu_s is not None and cpu_s >= self.cfg.budget_cpu_s  # type: ignore[operator]

    def fit(self, loss_fn: LossFn, next_batch: Callable[[int], Any]) -> int:
        """Train from the last checkpoint (or scratch) to ``num_steps``; returns the final step."""
        self.resume()
        out_dir = Path(self.cfg.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        budget = self.cfg.budget_cpu_s
        with _main_process_logs(out_dir, self.dist.is_main, self.step) as writer:
            start, t0, cpu0 = self.step, time.monotonic(), self.cpu_clock()
            cpu_s = None if budget is None else self._cpu_s(cpu0)
            while self.step < self.cfg.num_steps and not self._budget_spent(cpu_s):
                stats = self._one_step(loss_fn, next_batch)
                self.step += 1
                if budget is not None:
                    cpu_s = stats["cpu_s"] = self._cpu_s(cpu0)
                last = self.step == self.cfg.num_steps or self._budget_spent(cpu_s)
                if writer is not None and (self.step % self.cfg.log_every == 0 or last):
                    for key, value in stats.items():
                        writer.add_scalar(key, value, self.step)
                    append_metrics(out_dir / METRICS_FILE, self.step, stats)
                    rate = (self.step - start) / max(time.monotonic() - t0, 1e-9)
                    LOG.info(
                        "step %d/%d %s | %.2f steps/s, eta %.0fs", self.step, self.cfg.num_steps,
                        " ".join(f"{k} {v:.4g}" for k, v in stats.items()), rate,
                        (self.cfg.num_steps - self.step) / rate,
                    )  # fmt: skip
                if self.dist.is_main and (self.step % self.cfg.save_every == 0 or last):
                    save_checkpoint(self.ckpt_dir, self.step, self.model, self.optimizer,
                                    self.scheduler, keep=self.cfg.keep_checkpoints,
                                    extra=None if cpu_s is None else {"cpu_s": cpu_s})  # fmt: skip
            if self._budget_spent(cpu_s):
                LOG.info(
                    "stop: budget_cpu_s %.6g reached at step %d/%d (%.6g CPU seconds spent)",
                    budget, self.step, self.cfg.num_steps, cpu_s,
                )  # fmt: skip
            if writer is not None and self.timer is not None and self.timer.steps:
                parts = sorted(k for k in self.timer.totals if k != STEP_KEY)
                LOG.info("time split of this run's steps: %s",
                         split_summary(self.timer.totals, parts, self.timer.steps))  # fmt: skip
        return self.step

    def _timed(self, name: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext() if self.timer is None else self.timer(name)

    def _one_step(self, loss_fn: LossFn, next_batch: Callable[[int], Any]) -> dict[str, float]:
        with self._timed(STEP_KEY):
            totals = self._update(loss_fn, next_batch)
        if self.timer is not None:
            totals.update(self.timer.take())
        return totals

    def _update(self, loss_fn: LossFn, next_batch: Callable[[int], Any]) -> dict[str, float]:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        for micro in range(self.cfg.grad_accum):
            last = micro == self.cfg.grad_accum - 1
            sync = (
                contextlib.nullcontext()
                if last or not self.dist.is_distributed
                else self.model.no_sync()
            )
            with sync:
                result = loss_fn(self.model, next_batch(self.step * self.cfg.grad_accum + micro))
                loss, extra = result if isinstance(result, tuple) else (result, {})
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"non-finite loss {loss.item()} at step {self.step + 1}"
                    )
                with self._timed(UPDATE_KEY):
                    (loss / self.cfg.grad_accum).backward()
            for key, value in {"loss": loss.item(), **extra}.items():
                totals[key] = totals.get(key, 0.0) + float(value) / self.cfg.grad_accum
        with self._timed(UPDATE_KEY):
            if self.cfg.grad_clip is not None:
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
                totals["grad_norm"] = float(norm)
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
        totals["lr"] = float(self.optimizer.param_groups[0]["lr"])
        return totals


def append_metrics(path: Path, step: int, stats: Mapping[str, float]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"step": step, **{k: float(v) for k, v in stats.items()}}) + "\n")


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """Logged steps in order; a step logged twice (a run resumed from an earlier checkpoint) keeps
    its last record."""
    by_step: dict[int, dict[str, float]] = {}
    with Path(path).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                by_step[int(record["step"])] = record
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{path}:{lineno}: not a metrics record ({err})") from err
    return [by_step[k] for k in sorted(by_step)]


@contextlib.contextmanager
def _main_process_logs(out_dir: Path, is_main: bool, start_step: int):
    """On rank 0: ``train.log`` (appended across resumes) and a tensorboard writer."""
    if not is_main:
        yield None
        return
    handler = logging.FileHandler(out_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=start_step + 1)
    try:
        yield writer
    finally:
        writer.close()
        root.removeHandler(handler)
        handler.close()
