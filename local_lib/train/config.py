"""The ``train:`` section every trainer reads, so all methods spell their shared keys alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from local_lib.train.trainer import TrainerConfig


@dataclass(frozen=True)
class TrainSection:
    """The `train:` section every trainer shares (codec LM SFT, GRPO and later methods, Grad-TTS,
    EASPO...); a method adds its own keys by subclassing."""

    num_steps: int = 1000
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0  # max global grad norm; None = no clipping
    grad_accum: int = 1
    save_every: int = 100
    log_every: int = 10
    keep_checkpoints: int = 2  # 0 keeps all
    # stop at the first step where the run's CPU seconds (all ranks, resumes included) reach it
    budget_cpu_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("num_steps", "grad_accum", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or null, got {self.grad_clip}")
        if self.keep_checkpoints < 0:
            raise ValueError(f"keep_checkpoints must be >= 0, got {self.keep_checkpoints}")
        if self.budget_cpu_s is not None and self.budget_cpu_s <= 0:
            raise ValueError(f"budget_cpu_s must be > 0 or null, got {self.budget_cpu_s}")

    def trainer_config(self, out_dir: Path) -> TrainerConfig:
        return TrainerConfig(
            out_dir=Path(out_dir),
            num_steps=self.num_steps,
            grad_accum=self.grad_accum,
            grad_clip=self.grad_clip,
            save_every=self.save_every,
            log_every=self.log_every,
            keep_checkpoints=self.keep_checkpoints,
            budget_cpu_s=self.budget_cpu_s,
        )
