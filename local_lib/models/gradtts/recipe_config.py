"""The recipe's ``conf/gradtts*.yaml``: one file, three sections, read by stages 4 and 6.

``model`` is ``GradTTSConfig``; ``train`` the stage-4 optimisation; ``synth`` the stage-6
sampler and vocoder. Unknown keys anywhere are an error that names the file and the section.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from local_lib.models.config_yaml import load_yaml_mapping
from local_lib.models.gradtts.config import GradTTSConfig, dataclass_from_mapping


LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class GradTTSTrainConfig:
    """Stage-4 optimisation; ``steps`` is a budget of optimizer updates."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 50
    # After warm-up: "constant", or "cosine" down to min_lr_ratio·lr at the last step (a short
    # CPU run gains most from the annealed end: dev losses fall once the rate does).
    lr_schedule: str = "constant"
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    grad_accum: int = 1
    log_every: int = 10
    save_every: int = 100
    valid_every: int = 100
    valid_utts: int = 32

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "log_every", "save_every",
                     "valid_every", "valid_utts"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.valid_every % self.log_every:
            raise ValueError(
                f"valid_every {self.valid_every} must be a multiple of log_every {self.log_every}"
                " (dev losses are logged with the training step that computes them)"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if self.lr <= 0 or self.warmup_steps < 0:
            raise ValueError(
                f"need lr > 0 and warmup_steps >= 0, got {self.lr}, {self.warmup_steps}"
            )


@dataclass(frozen=True)
class GradTTSSynthConfig:
    """Stage-6 reverse diffusion (Grad-TTS's temperature: prior noise divided by it) and vocoder."""

    n_steps: int = 10
    temperature: float = 1.5
    ode: bool = False
    length_scale: float = 1.0
    vocoder_iters: int = 32

    def __post_init__(self) -> None:
        if self.n_steps < 1 or self.vocoder_iters < 1:
            raise ValueError(
                f"n_steps and vocoder_iters must be >= 1, got {self.n_steps}, {self.vocoder_iters}"
            )
        if self.temperature <= 0 or self.length_scale <= 0:
            raise ValueError(
                f"temperature and length_scale must be positive, got {self.temperature}, "
                f"{self.length_scale}"
            )


@dataclass(frozen=True)
class GradTTSRecipeConfig:
    model: GradTTSConfig
    train: GradTTSTrainConfig
    synth: GradTTSSynthConfig


def load_recipe_config(path: str | Path) -> GradTTSRecipeConfig:
    """Read ``conf/gradtts*.yaml``; missing sections take their defaults."""
    data = load_yaml_mapping(Path(path), {"model", "train", "synth"})
    return GradTTSRecipeConfig(
        model=dataclass_from_mapping(GradTTSConfig, data.get("model") or {}, f"{path} [model]"),
        train=dataclass_from_mapping(
            GradTTSTrainConfig, data.get("train") or {}, f"{path} [train]"
        ),
        synth=dataclass_from_mapping(
            GradTTSSynthConfig, data.get("synth") or {}, f"{path} [synth]"
        ),
    )
