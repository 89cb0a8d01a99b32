"""Grad-TTS architecture settings, the ``model:`` section of ``conf/gradtts*.yaml``."""

from __future__ import annotations

from dataclasses import dataclass


DECODER_KINDS = ("unet", "conv1d")
SCORE_PARAMS = ("score", "eps", "residual")


@dataclass(frozen=True)
class GradTTSConfig:
    """Architecture and diffusion settings; vocabulary, speaker, emotion counts come from data."""

    n_mels: int = 80
    cond_dim: int = 64
    # text encoder
    enc_channels: int = 192
    enc_filter_channels: int = 768
    enc_heads: int = 2
    enc_layers: int = 6
    enc_kernel_size: int = 3
    enc_dropout: float = 0.1
    prenet_layers: int = 3
    prenet_kernel_size: int = 5
    # duration predictor
    dp_filter_channels: int = 256
    dp_kernel_size: int = 3
    # score model: "unet" (Grad-TTS's 2-D U-Net) or "conv1d" (mel bins as channels, CPU-cheap)
    dec_kind: str = "unet"
    dec_blocks: int = 6  # conv1d only
    dec_dim: int = 64
    dec_dim_mults: tuple[int, ...] = (1, 2, 4)
    dec_groups: int = 8
    dec_attention: bool = True
    # What the score model's output F means: "score" (the paper: s_θ = F), "eps" (ours: the noise,
    # s_θ = −F/σ_t) or "residual" (ours: the noise beyond the Gaussian-prior estimate,
    # s_θ = −(x_t − μ) − F/σ_t). Same loss and sampler in every case; see GradTTS.score.
    score_param: str = "score"
    # diffusion
    beta_min: float = 0.05
    beta_max: float = 20.0
    segment_frames: int | None = None

    def __post_init__(self) -> None:
        if self.enc_channels % self.enc_heads:
            raise ValueError(
                f"enc_channels {self.enc_channels} not divisible by enc_heads {self.enc_heads}"
            )
        if self.dec_kind not in DECODER_KINDS:
            raise ValueError(f"dec_kind must be one of {DECODER_KINDS}, got {self.dec_kind!r}")
        if self.score_param not in SCORE_PARAMS:
            raise ValueError(
                f"score_param must be one of {SCORE_PARAMS}, got {self.score_param!r}"
            )
        if self.dec_blocks < 1:
            raise ValueError(f"dec_blocks must be >= 1, got {self.dec_blocks}")
        if not self.dec_dim_mults or min(self.dec_dim_mults) <= 0:
            raise ValueError(f"dec_dim_mults must be positive, got {self.dec_dim_mults}")
        factor = 2 ** (len(self.dec_dim_mults) - 1) if self.dec_kind == "unet" else 1
        if self.n_mels % factor:
            raise ValueError(
                f"n_mels {self.n_mels} must be divisible by {factor} for "
                f"{len(self.dec_dim_mults)} U-Net levels"
            )
        if self.dec_dim % self.dec_groups:
            raise ValueError(
                f"dec_dim {self.dec_dim} not divisible by dec_groups {self.dec_groups}"
            )
        if not 0 <= self.beta_min < self.beta_max:
            raise ValueError(f"need 0 <= beta_min < beta_max, got {self.beta_min}, {self.beta_max}")
        if self.segment_frames is not None and self.segment_frames % factor:
            raise ValueError(f"segment_frames {self.segment_frames} must be a multiple of {factor}")
