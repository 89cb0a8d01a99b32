"""Audio I/O through soundfile (torchaudio.load needs torchcodec, which we do not ship)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional

from local_lib.atomic_io import atomic_path


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the path."""


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Read any soundfile-supported file as float32 mono at ``sample_rate``."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file does not exist")
    try:
        data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, soundfile.LibsndfileError) as err:
        raise AudioError(f"{path}: cannot read audio: {err}") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio file has no samples")
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if file_rate != sample_rate:
        wav = torchaudio.functional.resample(
            torch.from_numpy(np.ascontiguousarray(wav)), file_rate, sample_rate
        ).numpy()
    return np.ascontiguousarray(wav, dtype=np.float32)


def save_audio(path: str | Path, wav: np.ndarray, sample_rate: int = 16000) -> None:
    """Write 16-bit PCM wav atomically, clipping to [-1, 1] so loud output cannot wrap."""
    samples = np.asarray(wav, dtype=np.float32)
    if samples.ndim != 1:
        raise AudioError(f"{path}: expected mono 1-D samples, got shape {samples.shape}")
    with atomic_path(Path(path)) as tmp:
        soundfile.write(
            str(tmp), np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV"
        )
