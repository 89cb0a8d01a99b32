"""F0 and energy contours and their distance after DTW alignment.

Two renditions of one sentence differ in timing, so contours are compared after aligning the
log-mel frames with the project's DTW kernel (``local_lib.align.dtw``, Euclidean
frame cost). F0 comes from a normalised autocorrelation
peak picker (vectorised, deterministic); a frame is voiced when its peak exceeds
``voicing_threshold`` and its level is within 40 dB of the loudest frame.
"""

from dataclasses import dataclass

import numpy as np

from local_lib.align.dtw import dtw


@dataclass(frozen=True)
class ProsodyConfig:
    sample_rate: int = 16000
    hop_length: int = 256
    win_length: int = 1024
    f0_min: float = 60.0
    f0_max: float = 500.0
    voicing_threshold: float = 0.5


def _frames(wav: np.ndarray, cfg: ProsodyConfig) -> np.ndarray:
    pad = cfg.win_length // 2
    padded = np.pad(np.asarray(wav, dtype=np.float64), (pad, pad))
    n = 1 + max(0, len(padded) - cfg.win_length) // cfg.hop_length
    idx = np.arange(cfg.win_length)[None, :] + cfg.hop_length * np.arange(n)[:, None]
    return padded[idx]


def energy_db(wav: np.ndarray, cfg: ProsodyConfig = ProsodyConfig()) -> np.ndarray:
    """Frame RMS level in dB, one value per hop."""
    rms = np.sqrt(np.mean(_frames(wav, cfg) ** 2, axis=1))
    return 20.0 * np.log10(np.maximum(rms, 1e-5))


def f0_contour(wav: np.ndarray, cfg: ProsodyConfig = ProsodyConfig()) -> np.ndarray:
    """F0 in Hz per hop; 0 marks unvoiced frames."""
    frames = _frames(wav, cfg)
    frames = frames - frames.mean(axis=1, keepdims=True)
    n_fft = 2 * cfg.win_length
    spec = np.fft.rfft(frames * np.hanning(cfg.win_length), n=n_fft, axis=1)
    acf = np.fft.irfft(np.abs(spec) ** 2, n=n_fft, axis=1)[:, : cfg.win_length]
    window_acf = np.fft.irfft(np.abs(np.fft.rfft(np.hanning(cfg.win_length), n=n_fft)) ** 2)
    acf = acf / np.maximum(window_acf[: cfg.win_length], 1e-9)
    nccf = acf / np.maximum(acf[:, :1], 1e-12)
    lo = int(cfg.sample_rate / cfg.f0_max)
    hi = min(int(cfg.sample_rate / cfg.f0_min), cfg.win_length - 1)
    band = nccf[:, lo - 1 : hi + 2]
    inner = band[:, 1:-1]
    is_peak = (inner >= band[:, :-2]) & (inner >= band[:, 2:])
    best = inner.max(axis=1, keepdims=True)
    # The shortest lag whose peak is within 10 % of the best one avoids sub-octave errors.
    lag = lo + np.argmax(is_peak & (inner >= 0.9 * best), axis=1)
    peak = nccf[np.arange(len(frames)), lag]
    level = energy_db(wav, cfg)
    voiced = (peak > cfg.voicing_threshold) & (level > level.max() - 40.0)
    return np.where(voiced, cfg.sample_rate / lag, 0.0)


@dataclass(frozen=True)
class ProsodyDistance:
    f0_rmse_hz: float
    energy_rmse_db: float


def prosody_distance(
    hyp_wav: np.ndarray,
    ref_wav: np.ndarray,
    hyp_mel: np.ndarray,
    ref_mel: np.ndarray,
    cfg: ProsodyConfig = ProsodyConfig(),
) -> ProsodyDistance:
    """F0 RMSE over frames voiced in both, energy RMSE over all frames, after DTW on log-mel.

    F0 RMSE is NaN when no aligned frame pair is voiced in both.
    """
    hyp_f0, ref_f0 = f0_contour(hyp_wav, cfg), f0_contour(ref_wav, cfg)
    hyp_en, ref_en = energy_db(hyp_wav, cfg), energy_db(ref_wav, cfg)
    n_hyp = min(len(hyp_f0), len(hyp_mel))
    n_ref = min(len(ref_f0), len(ref_mel))
    _, path = dtw(hyp_mel[:n_hyp].astype(np.float64), ref_mel[:n_ref].astype(np.float64))
    hi, ri = path[:, 0], path[:, 1]
    both = (hyp_f0[hi] > 0) & (ref_f0[ri] > 0)
    f0 = (
        float(np.sqrt(np.mean((hyp_f0[hi][both] - ref_f0[ri][both]) ** 2)))
        if both.any()
        else float("nan")
    )
    energy = float(np.sqrt(np.mean((hyp_en[hi] - ref_en[ri]) ** 2)))
    return ProsodyDistance(f0, energy)
