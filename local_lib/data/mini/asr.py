"""mini_asr: an ASR-only LibriTTS subset (train-clean-360) from new voices and new sentences.

The reward ASR of the real recipes (Whisper) heard far more speech than the TTS trains on; this
corpus gives the mini recipes' reward ASR the same advantage. Its speakers use espeak-ng
file+variant pairs that no other mini corpus uses (`voices.ASR_SPEAKERS`), and its sentences are
none of mini_libritts' (any subset), mini_seedtts' prompts and targets, or mini_esd's, so no
dev/test voice or sentence of any recipe is heard. Written in LibriTTS layout at 24 kHz, so the
LibriTTS preparer reads it as the subset `train-clean-360`, as a user of the real corpus would
add that subset for the same purpose.
"""

from __future__ import annotations

from pathlib import Path

from local_lib.data.mini.esd import esd_sentences
from local_lib.data.mini.libritts import add_chapter, libritts_sentences
from local_lib.data.mini.plan import CorpusPlan, tsv_lines
from local_lib.data.mini.sentences import split_sentences
from local_lib.data.mini.voices import ASR_SPEAKERS

SUBSET = "train-clean-360"
CHAPTERS_PER_SPEAKER = 2
UTTERANCES_PER_CHAPTER = 50


def held_out_sentences(seed: int) -> set[str]:
    """Every sentence another mini corpus speaks for `seed`: mini_asr may use none of them."""
    libritts = libritts_sentences(seed)
    return {s for split in libritts.values() for s in split} | set(esd_sentences(seed))


def asr_sentences(seed: int) -> list[str]:
    """The corpus's sentences in reading order (speaker by speaker, chapter by chapter)."""
    count = len(ASR_SPEAKERS) * CHAPTERS_PER_SPEAKER * UTTERANCES_PER_CHAPTER
    return split_sentences(seed, count, {}, salt="asr", exclude=held_out_sentences(seed))["train"]


def plan_asr(seed: int, max_sentences: int | None = None) -> CorpusPlan:
    """Each speaker reads its own sentences, chapter by chapter, in LibriTTS file naming.

    `max_sentences` caps utterances per chapter (a size knob for tests).
    """
    pool = iter(asr_sentences(seed))
    plan = CorpusPlan()
    speakers_tsv = []
    for speaker in ASR_SPEAKERS:
        speakers_tsv.append((speaker.id, speaker.gender, SUBSET, speaker.voice.name))
        for c in range(CHAPTERS_PER_SPEAKER):
            chapter = f"{speaker.id}{c + 1:02d}"
            texts = [next(pool) for _ in range(UTTERANCES_PER_CHAPTER)][:max_sentences]
            add_chapter(plan, Path(SUBSET, speaker.id, chapter), speaker.voice, texts)
    header = "READER\tGENDER\tSUBSET\tNAME\n"
    plan.texts[Path("speakers.tsv")] = header + tsv_lines(speakers_tsv)
    return plan
