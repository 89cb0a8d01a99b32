"""Log-mel: agreement with an independent NumPy/librosa reference, shapes, config loading."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.signal
import torch

from local_lib.data.features import LogMelConfig, log_mel, log_mel_torch

SMALL = LogMelConfig(n_fft=512, win_length=400, hop_length=160, n_mels=40, f_max=7600.0)
REPO = Path(__file__).resolve().parents[2]


def reference_log_mel(wav: np.ndarray, cfg: LogMelConfig) -> np.ndarray:
    """Centre-padded STFT magnitude (periodic Hann) through librosa's slaney filterbank."""
    padded = np.pad(wav.astype(np.float64), cfg.n_fft // 2, mode="reflect")
    window = np.zeros(cfg.n_fft)
    offset = (cfg.n_fft - cfg.win_length) // 2
    window[offset:offset + cfg.win_length] = scipy.signal.get_window("hann", cfg.win_length)
    n_frames = 1 + wav.size // cfg.hop_length
    frames = np.stack([padded[i * cfg.hop_length:i * cfg.hop_length + cfg.n_fft]
                       for i in range(n_frames)])
    magnitude = np.abs(np.fft.rfft(frames * window, axis=1))
    bank = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels,
                               fmin=cfg.f_min, fmax=cfg.f_max, htk=False, norm="slaney")
    return np.log(np.maximum(magnitude @ bank.T, cfg.log_floor))


@pytest.mark.parametrize("cfg", [LogMelConfig(), SMALL], ids=["default", "small"])
def test_matches_the_numpy_reference(cfg):
    rng = np.random.default_rng(0)
    t = np.arange(8000) / cfg.sample_rate
    wav = 0.3 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(t.size)
    wav = wav.astype(np.float32)
    feats = log_mel(wav, cfg)
    assert feats.dtype == np.float32
    assert feats.shape == (1 + wav.size // cfg.hop_length, cfg.n_mels)
    np.testing.assert_allclose(feats, reference_log_mel(wav, cfg), atol=2e-3)


def test_silence_sits_at_the_log_floor():
    feats = log_mel(np.zeros(4000, dtype=np.float32), SMALL)
    np.testing.assert_allclose(feats, np.log(SMALL.log_floor))


def test_numpy_and_torch_paths_agree_and_batch_matches_items():
    rng = np.random.default_rng(1)
    batch = rng.uniform(-0.5, 0.5, size=(3, 4000)).astype(np.float32)
    batched = log_mel_torch(torch.from_numpy(batch), SMALL)
    assert batched.shape == (3, 26, SMALL.n_mels)
    for row, item in zip(batch, batched):
        np.testing.assert_array_equal(log_mel(row, SMALL), item.numpy())
    np.testing.assert_array_equal(log_mel(batch[0], SMALL), log_mel(batch[0], SMALL))


def test_torch_path_is_differentiable():
    wav = torch.rand(4000, requires_grad=True)
    log_mel_torch(wav, SMALL).sum().backward()
    assert wav.grad is not None and torch.isfinite(wav.grad).all() and wav.grad.abs().sum() > 0


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="too short"):
        log_mel(np.zeros(100, dtype=np.float32), LogMelConfig())
    with pytest.raises(ValueError, match="1-D"):
        log_mel(np.zeros((2, 4000), dtype=np.float32), SMALL)
    with pytest.raises(ValueError, match="f_max"):
        LogMelConfig(f_max=9000.0)
    with pytest.raises(ValueError, match="win_length"):
        LogMelConfig(win_length=2048)


def test_yaml_loading_and_unknown_keys(tmp_path):
    assert LogMelConfig.from_yaml(REPO / "egs/TEMPLATE/conf/feats.yaml") == LogMelConfig()
    (tmp_path / "f.yaml").write_text("n_mels: 40\nhop_lenght: 200\n")
    with pytest.raises(ValueError, match=r"f\.yaml: unknown key\(s\) hop_lenght"):
        LogMelConfig.from_yaml(tmp_path / "f.yaml")
    (tmp_path / "g.yaml").write_text("n_mels: 40\n")
    assert LogMelConfig.from_yaml(tmp_path / "g.yaml").n_mels == 40
