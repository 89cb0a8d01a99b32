"""The synthetic speakers of the mini corpora.

Each corpus and split gets its own speakers, so dev/test and seed-tts-eval prompts come from
voices never heard in training (as in LibriTTS and seed-tts-eval); mini_asr's speakers use
file+variant pairs that no other corpus uses. Voices are named by their file (`gmw/en-US`) plus
a variant (`+m3`): file names can be checked against `espeak-ng --voices` and, unlike some
language aliases (`en-gb`), always take the variant.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from local_lib.data.mini.espeak import Voice


@dataclass(frozen=True)
class Speaker:
    """A corpus speaker id with its voice and the gender its variant imitates (M/F)."""

    id: str
    voice: Voice
    gender: str


def _speakers(rows: tuple[tuple[str, str, int, int, str], ...]) -> tuple[Speaker, ...]:
    """Rows of (id, espeak voice, pitch, speed, gender) as Speakers."""
    return tuple(Speaker(row[0], Voice(*row[1:4]), row[4]) for row in rows)


ESD_SPEAKERS = _speakers((
    ("0011", "gmw/en+m3", 45, 160, "M"),
    ("0012", "gmw/en+f2", 55, 165, "F"),
))

LIBRITTS_SPEAKERS: dict[str, tuple[Speaker, ...]] = {
    "train-clean-100": _speakers((
        ("1001", "gmw/en-US+m1", 45, 160, "M"),
        ("1002", "gmw/en+f4", 50, 170, "F"),
        ("1003", "gmw/en-GB-x-rp+m7", 55, 155, "M"),
        ("1004", "gmw/en-US+f1", 45, 175, "F"),
        ("1005", "gmw/en-GB-scotland+m2", 50, 165, "M"),
        ("1006", "gmw/en-029+f3", 55, 160, "F"),
        ("1007", "gmw/en-GB-x-gbclan+m3", 50, 150, "M"),
        ("1008", "gmw/en-US-nyc+f2", 55, 165, "F"),
        ("1009", "gmw/en-GB-x-gbcwmd+m6", 45, 170, "M"),
        ("1010", "gmw/en-GB-x-rp+f4", 50, 175, "F"),
        ("1011", "gmw/en-029+m4", 50, 155, "M"),
        ("1012", "gmw/en-GB-scotland+f5", 55, 170, "F"),
        ("1013", "gmw/en-US+m8", 50, 165, "M"),
        ("1014", "gmw/en+f1", 50, 155, "F"),
    )),
    "dev-clean": _speakers((
        ("2001", "gmw/en-US-nyc+m5", 50, 170, "M"),
        ("2002", "gmw/en-GB-x-rp+f5", 50, 160, "F"),
    )),
    "test-clean": _speakers((
        ("3001", "gmw/en+m4", 50, 165, "M"),
        ("3002", "gmw/en-GB-x-gbcwmd+f1", 45, 170, "F"),
    )),
}

SEEDTTS_SPEAKERS = _speakers((
    ("4001", "gmw/en-GB-x-gbclan+m6", 50, 165, "M"),
    ("4002", "gmw/en-US+f5", 45, 160, "F"),
    ("4003", "gmw/en-029+m8", 55, 170, "M"),
    ("4004", "gmw/en-GB-scotland+f3", 50, 165, "F"),
))

# mini_asr's voices come from every espeak-ng English file with the male and female variants the
# other corpora use; a file+variant pair any other mini corpus speaks with is never reused.
ASR_VOICE_FILES = (
    "gmw/en", "gmw/en-US", "gmw/en-US-nyc", "gmw/en-029", "gmw/en-GB-x-rp",
    "gmw/en-GB-scotland", "gmw/en-GB-x-gbclan", "gmw/en-GB-x-gbcwmd",
)
ASR_VARIANTS = {"M": tuple(f"m{i}" for i in range(1, 9)), "F": tuple(f"f{i}" for i in range(1, 6))}
ASR_SPEAKERS_PER_GENDER = 20
ASR_FIRST_ID = 5001
ASR_PITCHES = (40, 45, 50, 55, 60)
ASR_SPEEDS = (145, 150, 155, 160, 165, 170, 175, 180)


def tts_speakers() -> tuple[Speaker, ...]:
    """Every speaker of mini_esd, mini_libritts (all subsets) and mini_seedtts."""
    return (
        ESD_SPEAKERS + tuple(s for group in LIBRITTS_SPEAKERS.values() for s in group)
        + SEEDTTS_SPEAKERS
    )


def _asr_speakers() -> tuple[Speaker, ...]:
    """Speakers 5001.. with unused file+variant pairs, alternating M and F, fixed for every seed.

    Pairs, pitches and speeds are drawn with their own fixed RNG, so the corpus seed changes
    only the sentences; the sorted candidate list keeps the draw independent of set order.
    """
    rng = random.Random("mini-asr-voices")
    taken = {s.voice.name for s in tts_speakers()}  # file+variant
    picked = {}
    for gender, variants in ASR_VARIANTS.items():
        free = sorted(
            f"{file}+{v}" for file in ASR_VOICE_FILES for v in variants
            if f"{file}+{v}" not in taken
        )
        picked[gender] = rng.sample(free, ASR_SPEAKERS_PER_GENDER)
    speakers = []
    for i in range(2 * ASR_SPEAKERS_PER_GENDER):
        gender = "MF"[i % 2]
        voice = Voice(picked[gender][i // 2], rng.choice(ASR_PITCHES), rng.choice(ASR_SPEEDS))
        speakers.append(Speaker(str(ASR_FIRST_ID + i), voice, gender))
    return tuple(speakers)


ASR_SPEAKERS = _asr_speakers()
