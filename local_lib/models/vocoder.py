"""The default vocoder: Griffin-Lim on the project's log-mel features (LogMelConfig).

Log-mel -> magnitude mel -> linear magnitude by non-negative least squares against the same
slaney filterbank the features use (multiplicative updates from a clamped pseudo-inverse)
-> phase by torchaudio's Griffin-Lim (deterministic start, momentum 0.99).
"""

import numpy as np
import torch
import torchaudio

from local_lib.data.features import LogMelConfig


class GriffinLimVocoder:
    def __init__(self, cfg: LogMelConfig = LogMelConfig(), n_iter: int = 32, nnls_iter: int = 30):
        self.cfg, self.nnls_iter = cfg, nnls_iter
        self.fbank = torchaudio.functional.melscale_fbanks(
            n_freqs=cfg.n_fft // 2 + 1,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            n_mels=cfg.n_mels,
            sample_rate=cfg.sample_rate,
            norm="slaney",
            mel_scale="slaney",
        )  # [n_freqs, n_mels]
        self.pinv = torch.linalg.pinv(self.fbank)
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=cfg.n_fft,
            n_iter=n_iter,
            win_length=cfg.win_length,
            hop_length=cfg.hop_length,
            power=1.0,
            momentum=0.99,
            rand_init=False,
        )

    def linear_magnitude(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``[frames, n_mels]`` log-mel -> ``[n_freqs, frames]`` non-negative magnitude."""
        mel = torch.exp(log_mel.float())
        spec = (mel @ self.pinv).clamp(min=1e-6)
        gram = self.fbank @ self.fbank.T
        target = mel @ self.fbank.T
        for _ in range(self.nnls_iter):
            spec = spec * target / (spec @ gram).clamp(min=1e-9)
        return spec.T

    @torch.no_grad()
    def __call__(self, log_mel: np.ndarray, length: int | None = None) -> np.ndarray:
        """Waveform (float32, ``length`` samples when given) for ``[frames, n_mels]`` log-mel."""
        log_mel = torch.as_tensor(np.asarray(log_mel))
        if log_mel.ndim != 2 or log_mel.shape[1] != self.cfg.n_mels:
            raise ValueError(
                f"expected [frames, {self.cfg.n_mels}] log-mel, got {tuple(log_mel.shape)}"
            )
        self.griffin_lim.length = length
        wav = self.griffin_lim(self.linear_magnitude(log_mel))
        return wav.numpy().astype(np.float32)
