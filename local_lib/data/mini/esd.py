"""mini_esd: ESD's layout, speakers 0011.., five emotions over the same K sentences.

Sentence order is dev (20), test (30), then train, so ESD's official per-folder split (first 20
dev, next 30 test, rest train) gives disjoint sentence sets with no unseen test words.
"""

from __future__ import annotations

from pathlib import Path

from local_lib.data.mini.emotions import EMOTIONS, emotion_prosody
from local_lib.data.mini.plan import CorpusPlan, tsv_lines
from local_lib.data.mini.render import Utterance
from local_lib.data.mini.sentences import split_sentences
from local_lib.data.mini.voices import ESD_SPEAKERS

SAMPLE_RATE = 16000  # ESD's own rate
N_DEV = 20
N_TEST = 30
N_SENTENCES = 250


def esd_sentences(seed: int) -> list[str]:
    """The K sentences in ESD numbering order: dev block, test block, training block."""
    splits = split_sentences(
        seed, N_SENTENCES - N_DEV - N_TEST, {"dev": N_DEV, "test": N_TEST}, salt="esd"
    )
    return splits["dev"] + splits["test"] + splits["train"]


def plan_esd(seed: int, max_sentences: int | None = None) -> CorpusPlan:
    """Every speaker says the same sentences in every emotion, numbered as in ESD."""
    sentences = esd_sentences(seed)[:max_sentences]
    k = len(sentences)
    plan = CorpusPlan()
    for speaker in ESD_SPEAKERS:
        rows = []
        for e_index, emotion in enumerate(EMOTIONS):
            for s_index, text in enumerate(sentences):
                utt = f"{speaker.id}_{e_index * k + s_index + 1:06d}"
                rows.append((utt, text, emotion))
                plan.utterances.append(Utterance(
                    path=Path(speaker.id, emotion, f"{utt}.wav"),
                    text=text,
                    voice=speaker.voice,
                    prosody=emotion_prosody(emotion, seed, utt),
                    sample_rate=SAMPLE_RATE,
                ))
        plan.texts[Path(speaker.id, f"{speaker.id}.txt")] = tsv_lines(rows)
    return plan
