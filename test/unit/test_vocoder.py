"""Griffin-Lim vocoder on the project's log-mel features."""

import numpy as np
import pytest
import torch

from local_lib.data.features import LogMelConfig, log_mel
from local_lib.models.vocoder import GriffinLimVocoder


def _tone(freq: float = 220.0, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_linear_magnitude_is_non_negative_and_reproduces_the_mel():
    cfg = LogMelConfig()
    voc = GriffinLimVocoder(cfg, nnls_iter=50)
    mel = log_mel(_tone(), cfg)
    spec = voc.linear_magnitude(torch.from_numpy(mel))
    assert spec.shape == (cfg.n_fft // 2 + 1, mel.shape[0]) and (spec >= 0).all()
    back = torch.log((spec.T @ voc.fbank).clamp(min=cfg.log_floor))
    assert float((back - torch.from_numpy(mel)).abs().mean()) < 0.1


def test_resynthesis_keeps_length_pitch_and_is_deterministic():
    cfg = LogMelConfig()
    voc = GriffinLimVocoder(cfg, n_iter=16)
    wav = _tone(220.0)
    out = voc(log_mel(wav, cfg), length=len(wav))
    assert out.shape == wav.shape and out.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(out))
    assert np.fft.rfftfreq(len(out), 1 / 16000)[spectrum.argmax()] == pytest.approx(220.0, abs=4.0)
    np.testing.assert_array_equal(out, voc(log_mel(wav, cfg), length=len(wav)))


def test_wrong_feature_shape_is_an_error():
    with pytest.raises(ValueError, match=r"\[frames, 80\]"):
        GriffinLimVocoder()(np.zeros((10, 40), dtype=np.float32))
