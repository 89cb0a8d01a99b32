"""The five emotions are acoustically distinct, and jitter varies per utterance, not per run."""

from __future__ import annotations

import numpy as np
import pytest

from local_lib.data.mini.emotions import EMOTIONS, emotion_prosody
from local_lib.data.mini.espeak import synthesize
from local_lib.data.mini.voices import ESD_SPEAKERS

SENTENCE = "Did the baker check the brown bench before sunrise?"
RATE = 16000


def median_f0(wav: np.ndarray, sr: int = RATE) -> float:
    """Median autocorrelation pitch over voiced 40 ms frames (enough to rank emotions)."""
    frame, hop = int(0.04 * sr), int(0.01 * sr)
    lo, hi = sr // 500, sr // 60
    energy_floor = 0.1 * np.sqrt(np.mean(wav**2))
    f0s = []
    for start in range(0, len(wav) - frame, hop):
        x = wav[start:start + frame] - wav[start:start + frame].mean()
        if np.sqrt(np.mean(x**2)) < energy_floor:
            continue
        ac = np.correlate(x, x, mode="full")[frame - 1:]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5 * ac[0]:
            f0s.append(sr / lag)
    return float(np.median(f0s))


@pytest.fixture(scope="module", params=[s.id for s in ESD_SPEAKERS])
def renders(request) -> dict[str, np.ndarray]:
    """The same sentence by one ESD speaker in every emotion."""
    voice = next(s.voice for s in ESD_SPEAKERS if s.id == request.param)
    return {
        e: synthesize(SENTENCE, voice, emotion_prosody(e, 0, f"{request.param}_{e}"), RATE)
        for e in EMOTIONS
    }


def rms(wav: np.ndarray) -> float:
    return float(np.sqrt(np.mean(wav**2)))


def test_sad_is_lower_slower_softer_than_happy(renders):
    sad, happy = renders["Sad"], renders["Happy"]
    assert median_f0(happy) > 1.3 * median_f0(sad)
    assert len(sad) > 1.3 * len(happy)
    assert rms(happy) > 1.5 * rms(sad)


def test_each_emotion_has_its_own_signature(renders):
    f0 = {e: median_f0(w) for e, w in renders.items()}
    assert f0["Surprise"] > f0["Happy"] > f0["Neutral"] > f0["Sad"]
    dur = {e: len(w) for e, w in renders.items()}
    assert dur["Angry"] < dur["Neutral"] < dur["Sad"]
    loud = {e: rms(w) for e, w in renders.items()}
    assert max(loud, key=loud.get) == "Angry" and min(loud, key=loud.get) == "Sad"


def test_jitter_depends_on_seed_and_utterance_only():
    assert emotion_prosody("Happy", 0, "0011_000001") == emotion_prosody("Happy", 0, "0011_000001")
    draws = {emotion_prosody("Happy", 0, f"0011_{i:06d}") for i in range(20)}
    assert len(draws) == 20
    assert emotion_prosody("Happy", 1, "0011_000001") != emotion_prosody("Happy", 0, "0011_000001")
    for p in draws:  # jitter stays far smaller than the gaps between emotions
        assert 25 <= p.pitch <= 45 and 100 <= p.rate <= 125


def test_unknown_emotion_is_named():
    with pytest.raises(ValueError, match="Bored"):
        emotion_prosody("Bored", 0, "0011_000001")
