"""ESD's five emotions as espeak-ng prosody, with per-utterance jitter.

The settings follow the usual acoustic portraits of acted emotion: sad is low, flat, slow and
soft; happy is high, lively and a little fast; angry is loud and fast with a moderately raised
pitch; surprise has the highest pitch and widest range. Jitter keeps one category from being a
single exact setting, so an emotion classifier has to learn the category.
"""

from __future__ import annotations

import random

from local_lib.data.mini.espeak import Prosody

# ESD's numbering order: Neutral 1..K, Angry K+1..2K, Happy, Sad, Surprise.
EMOTIONS: tuple[str, ...] = ("Neutral", "Angry", "Happy", "Sad", "Surprise")

EMOTION_PROSODY: dict[str, Prosody] = {
    "Neutral": Prosody(pitch=0, range=0, rate=100, volume=0),
    "Angry": Prosody(pitch=10, range=40, rate=125, volume=80),
    "Happy": Prosody(pitch=35, range=90, rate=112, volume=20),
    "Sad": Prosody(pitch=-25, range=-70, rate=72, volume=-45),
    "Surprise": Prosody(pitch=70, range=160, rate=95, volume=5),
}

# Half-widths of the uniform jitter, in the same percent units as Prosody.
JITTER = Prosody(pitch=6, range=15, rate=6, volume=10)


def emotion_prosody(emotion: str, seed: int, utt: str) -> Prosody:
    """The emotion's prosody moved by a jitter that depends only on (seed, utt)."""
    try:
        base = EMOTION_PROSODY[emotion]
    except KeyError:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {EMOTIONS}") from None
    rng = random.Random(f"mini-emotion-jitter:{seed}:{utt}")

    def jitter(value: float, width: float) -> float:
        return round(value + rng.uniform(-width, width), 1)

    return Prosody(
        pitch=jitter(base.pitch, JITTER.pitch),
        range=jitter(base.range, JITTER.range),
        rate=jitter(base.rate, JITTER.rate),
        volume=jitter(base.volume, JITTER.volume),
    )
