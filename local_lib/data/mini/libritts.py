"""mini_libritts: LibriTTS's layout and naming at 24 kHz, with held-out dev/test speakers.

The sentence plan is shared with mini_seedtts, which takes its prompts and targets from sets
held out of every mini_libritts split.
"""

from __future__ import annotations

from pathlib import Path

from local_lib.data.mini.espeak import Prosody, Voice
from local_lib.data.mini.plan import CorpusPlan, tsv_lines
from local_lib.data.mini.render import Utterance
from local_lib.data.mini.sentences import split_sentences
from local_lib.data.mini.voices import LIBRITTS_SPEAKERS, SEEDTTS_SPEAKERS

SAMPLE_RATE = 24000  # LibriTTS's own rate; espeak-ng's 22050 Hz is resampled
SENTENCES_PER_PARAGRAPH = 3
# subset -> (chapters per speaker, utterances per chapter)
SUBSET_SIZES: dict[str, tuple[int, int]] = {
    "train-clean-100": (2, 40),
    "dev-clean": (1, 20),
    "test-clean": (1, 20),
}
SEEDTTS_PER_SPEAKER = 10


def _count(subset: str) -> int:
    chapters, per_chapter = SUBSET_SIZES[subset]
    return len(LIBRITTS_SPEAKERS[subset]) * chapters * per_chapter


def libritts_sentences(seed: int) -> dict[str, list[str]]:
    """Sentence sets keyed by LibriTTS subset, plus `seedtts_prompt` and `seedtts_text`."""
    n_seedtts = len(SEEDTTS_SPEAKERS) * SEEDTTS_PER_SPEAKER
    splits = split_sentences(
        seed,
        _count("train-clean-100"),
        {
            "dev-clean": _count("dev-clean"),
            "test-clean": _count("test-clean"),
            "seedtts_prompt": n_seedtts,
            "seedtts_text": n_seedtts,
        },
        salt="libritts",
    )
    splits["train-clean-100"] = splits.pop("train")
    return splits


def plan_libritts(seed: int, max_sentences: int | None = None) -> CorpusPlan:
    """Each speaker reads its own sentences, chapter by chapter, in LibriTTS file naming.

    `max_sentences` caps utterances per chapter (a size knob for tests).
    """
    sentences = libritts_sentences(seed)
    plan = CorpusPlan()
    speakers_tsv = []
    for subset, (n_chapters, per_chapter) in SUBSET_SIZES.items():
        pool = iter(sentences[subset])
        for speaker in LIBRITTS_SPEAKERS[subset]:
            speakers_tsv.append((speaker.id, speaker.gender, subset, speaker.voice.name))
            for c in range(n_chapters):
                chapter = f"{speaker.id}{c + 1:02d}"
                texts = [next(pool) for _ in range(per_chapter)][:max_sentences]
                add_chapter(plan, Path(subset, speaker.id, chapter), speaker.voice, texts)
    header = "READER\tGENDER\tSUBSET\tNAME\n"
    plan.texts[Path("speakers.tsv")] = header + tsv_lines(speakers_tsv)
    return plan


def add_chapter(plan: CorpusPlan, folder: Path, voice: Voice, texts: list[str]) -> None:
    """One chapter: wav + .normalized.txt + .original.txt per utterance, and trans.tsv.

    Shared with mini_asr, whose subset the LibriTTS preparer reads the same way.
    """
    spk, chapter = folder.parts[-2:]
    rows = []
    for i, text in enumerate(texts):
        para, sent = divmod(i, SENTENCES_PER_PARAGRAPH)
        utt = f"{spk}_{chapter}_{para:06d}_{sent:06d}"
        rows.append((utt, text, text))
        plan.texts[folder / f"{utt}.normalized.txt"] = text
        plan.texts[folder / f"{utt}.original.txt"] = text
        plan.utterances.append(
            Utterance(folder / f"{utt}.wav", text, voice, Prosody(), SAMPLE_RATE)
        )
    plan.texts[folder / f"{spk}_{chapter}.trans.tsv"] = tsv_lines(rows)
