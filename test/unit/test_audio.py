"""Audio I/O: resampling, down-mixing, errors that name the file, atomic PCM writes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from local_lib.data.audio import AudioError, load_audio, save_audio


def test_load_resamples_to_the_requested_rate(tmp_path):
    t = np.arange(24000) / 24000
    soundfile.write(str(tmp_path / "a.wav"), 0.5 * np.sin(2 * np.pi * 440 * t), 24000)
    wav = load_audio(tmp_path / "a.wav", sample_rate=16000)
    assert wav.dtype == np.float32 and wav.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(wav))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 s of audio: bin index = Hz


def test_stereo_is_mixed_down_to_mono(tmp_path):
    stereo = np.stack([np.full(800, 0.5), np.full(800, -0.25)], axis=1)
    soundfile.write(str(tmp_path / "s.wav"), stereo, 16000, subtype="FLOAT")
    wav = load_audio(tmp_path / "s.wav")
    np.testing.assert_allclose(wav, np.full(800, 0.125, dtype=np.float32))


@pytest.mark.parametrize("content", [None, b"definitely not audio", b""])
def test_bad_files_raise_naming_the_path(tmp_path, content):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError, match=str(path)):
        load_audio(path)


def test_save_writes_clipped_pcm16_atomically(tmp_path):
    wav = np.array([0.0, 0.5, -0.5, 2.0, -2.0], dtype=np.float32)
    save_audio(tmp_path / "out.wav", wav, sample_rate=22050)
    info = soundfile.info(str(tmp_path / "out.wav"))
    assert (info.samplerate, info.subtype, info.channels) == (22050, "PCM_16", 1)
    back = load_audio(tmp_path / "out.wav", sample_rate=22050)
    np.testing.assert_allclose(back, np.clip(wav, -1, 1), atol=1 / 32767)
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_save_refuses_multichannel_without_touching_the_target(tmp_path):
    save_audio(tmp_path / "out.wav", np.zeros(10))
    with pytest.raises(AudioError, match="mono"):
        save_audio(tmp_path / "out.wav", np.zeros((10, 2)))
    assert soundfile.info(str(tmp_path / "out.wav")).frames == 10
