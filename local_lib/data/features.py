"""Log-mel features shared by the feature dump, TTS models and vocoders.

One transform serves the NumPy path (dump) and the torch path (models), so dumped features
and features computed on the fly agree bit for bit on CPU.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio

from local_lib.config import load_config


@dataclass(frozen=True)
class LogMelConfig:
    """Magnitude (power=1) slaney mel spectrogram, natural log after clamping to log_floor."""

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length {self.win_length} exceeds n_fft {self.n_fft}")
        if not 0.0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={self.f_min} "
                f"f_max={self.f_max} sample_rate={self.sample_rate}"
            )
        if min(self.hop_length, self.n_mels, self.n_fft) <= 0 or self.log_floor <= 0:
            raise ValueError("hop_length, n_mels, n_fft and log_floor must be positive")

    @classmethod
    def from_yaml(cls, path: str | Path) -> LogMelConfig:
        """A flat YAML mapping of these keys (conf/feats.yaml)."""
        return load_config(path, cls)


@functools.lru_cache(maxsize=8)
def _mel_transform(cfg: LogMelConfig, device: str) -> torchaudio.transforms.MelSpectrogram:
    """One transform per (config, device): building the filterbank each call is wasteful."""
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate,
        n_fft=cfg.n_fft,
        win_length=cfg.win_length,
        hop_length=cfg.hop_length,
        f_min=cfg.f_min,
        f_max=cfg.f_max,
        n_mels=cfg.n_mels,
        power=1.0,
        center=True,
        pad_mode="reflect",
        norm="slaney",
        mel_scale="slaney",
    ).to(device)


def log_mel_torch(wav: torch.Tensor, cfg: LogMelConfig) -> torch.Tensor:
    """``[T]`` -> ``[frames, n_mels]`` or ``[B, T]`` -> ``[B, frames, n_mels]``; differentiable."""
    if wav.dim() not in (1, 2):
        raise ValueError(f"expected a [T] or [B, T] waveform, got shape {tuple(wav.shape)}")
    transform = _mel_transform(cfg, str(wav.device))
    mel = transform(wav.float())
    return torch.log(torch.clamp(mel, min=cfg.log_floor)).transpose(-1, -2)


def log_mel(wav: np.ndarray, cfg: LogMelConfig) -> np.ndarray:
    """NumPy front of log_mel_torch: 1-D float waveform -> float32 ``[frames, n_mels]``."""
    samples = np.asarray(wav, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {samples.shape}")
    if samples.shape[0] <= cfg.n_fft // 2:
        raise ValueError(
            f"waveform of {samples.shape[0]} samples is too short for n_fft={cfg.n_fft}"
        )
    with torch.no_grad():
        feats = log_mel_torch(torch.from_numpy(np.ascontiguousarray(samples)), cfg)
    return feats.numpy().astype(np.float32, copy=False)
