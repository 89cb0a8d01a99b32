"""The recipe's ``conf/gradtts*.yaml``: one file, three sections, read by stages 4 and 6.

``model`` is ``GradTTSConfig``; ``train`` the stage-4 optimisation; ``synth`` the stage-6
sampler and vocoder. Read with ``local_lib.config.load_config(path, GradTTSRecipeConfig)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from local_lib.models.gradtts.config import GradTTSConfig
from local_lib.train.config import TrainSection
from local_lib.train.trainer import TrainerConfig

LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class GradTTSTrainSection(TrainSection):
    """Stage-4 optimisation; ``num_steps`` is a budget of optimizer updates."""

    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 50
    # After warm-up: "constant", or "cosine" down to min_lr_ratio·lr at the last step (a short
    # CPU run gains most from the annealed end: dev losses fall once the rate does).
    lr_schedule: str = "constant"
    min_lr_ratio: float = 0.1
    valid_every: int = 100
    valid_utts: int = 32
    # [ours] After the num_steps joint updates, decoder_steps more that train the decoder alone
    # on the settled encoder's μ (encoder and duration predictor at learning rate 0 and without
    # dropout), from decoder_lr down by cosine to min_lr_ratio·decoder_lr. Jointly, the decoder
    # chases a μ that moves until the end; 0 = no decoder phase.
    decoder_steps: int = 0
    decoder_lr: float = 5e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("batch_size", "valid_every", "valid_utts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.decoder_steps < 0 or self.decoder_lr <= 0:
            raise ValueError(
                f"need decoder_steps >= 0 and decoder_lr > 0, got {self.decoder_steps}, "
                f"{self.decoder_lr}"
            )
        if self.valid_every % self.log_every:
            raise ValueError(
                f"valid_every {self.valid_every} must be a multiple of log_every {self.log_every}"
                " (dev losses are logged with the training step that computes them)"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")

    @property
    def total_steps(self) -> int:
        """Optimizer updates of stage 4: the joint ones, then the decoder phase."""
        return self.num_steps + self.decoder_steps

    def trainer_config(self, out_dir: Path) -> TrainerConfig:
        return replace(super().trainer_config(out_dir), num_steps=self.total_steps)


@dataclass(frozen=True)
class GradTTSSynthConfig:
    """Stage-6 reverse diffusion (Grad-TTS's temperature: prior noise divided by it) and vocoder;
    ``n_steps: 0`` vocodes the prior mean μ alone (what the decoder adds, measured on dev)."""

    n_steps: int = 10
    temperature: float = 1.5
    ode: bool = False
    length_scale: float = 1.0
    vocoder_iters: int = 32

    def __post_init__(self) -> None:
        if self.n_steps < 0 or self.vocoder_iters < 1:
            raise ValueError(
                f"n_steps must be >= 0 and vocoder_iters >= 1, got {self.n_steps}, "
                f"{self.vocoder_iters}"
            )
        if self.temperature <= 0 or self.length_scale <= 0:
            raise ValueError(
                f"temperature and length_scale must be positive, got {self.temperature}, "
                f"{self.length_scale}"
            )


@dataclass(frozen=True)
class GradTTSRecipeConfig:
    """The whole file; a missing section takes its defaults."""

    model: GradTTSConfig = GradTTSConfig()
    train: GradTTSTrainSection = GradTTSTrainSection()
    synth: GradTTSSynthConfig = GradTTSSynthConfig()
