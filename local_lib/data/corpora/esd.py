"""ESD (Emotional Speech Dataset) -> data/{train,dev,test} with utt2emo and utt2lang.

Layout read: ``<root>/<spk>/<spk>.txt`` with ``utt<TAB>text<TAB>emotion`` lines (English or
ESD's Chinese emotion labels) and wavs under ``<root>/<spk>/<Emotion>/``, either directly or in
the ``train/evaluation/test`` sub-folders of the public release (found recursively; the split is
recomputed, not taken from those folders). Split (ESD's official one): within each
(speaker, emotion) folder, files sorted by id, the first ``n_dev`` go to dev, the next
``n_test`` to test, the rest to train. A wav without a transcript line is an error; a
transcript line without a wav is skipped with a warning (partial copies of ESD exist).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from local_lib.data.corpora.common import CorpusError, log, read_lines, write_checked_dir

EMOTIONS = ("Neutral", "Angry", "Happy", "Sad", "Surprise")
CHINESE_LABELS = {"中立": "Neutral", "生气": "Angry", "快乐": "Happy", "伤心": "Sad", "惊喜": "Surprise"}
ENGLISH_SPEAKERS = tuple(f"{number:04d}" for number in range(11, 21))
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Transcript:
    """One line of a speaker's txt file, kept with its origin for error messages."""

    text: str
    emotion: str
    source: str


def canonical_emotion(label: str) -> str | None:
    """ESD's English folder name for an English (any case) or Chinese label."""
    if label in CHINESE_LABELS:
        return CHINESE_LABELS[label]
    by_lower = {name.lower(): name for name in EMOTIONS}
    return by_lower.get(label.strip().lower())


def language_of(speaker: str) -> str:
    """ESD speakers 0001-0010 read Mandarin, 0011-0020 English."""
    return "zh" if int(speaker) <= 10 else "en"


def parse_speakers(spec: str) -> list[str]:
    """``0011-0020`` or ``0011,0013`` -> zero-padded speaker ids."""
    speakers: list[str] = []
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise CorpusError(f"bad speaker list {spec!r}; use e.g. 0011-0020 or 0011,0012")
        speakers += [f"{n:04d}" for n in range(int(first), int(last or first) + 1)]
    return speakers


def read_transcripts(txt: Path, speaker: str) -> dict[str, Transcript]:
    """utt -> Transcript from ``<spk>.txt``; any malformed line is an error naming file:line."""
    transcripts: dict[str, Transcript] = {}
    for number, line in read_lines(txt):
        fields = [field.strip() for field in line.split("\t")]
        while fields and not fields[-1]:
            fields.pop()
        where = f"{txt}:{number}"
        if len(fields) != 3 or not all(fields):
            raise CorpusError(f"{where}: expected 'utt<TAB>text<TAB>emotion', got {line!r}")
        utt, text, label = fields
        emotion = canonical_emotion(label)
        if emotion is None:
            raise CorpusError(f"{where}: {utt}: unknown emotion label {label!r}")
        if not utt.startswith(f"{speaker}_"):
            raise CorpusError(f"{where}: {utt}: utterance id does not start with '{speaker}_'")
        if utt in transcripts:
            first = transcripts[utt].source
            raise CorpusError(f"{where}: {utt}: duplicate utterance (first at {first})")
        transcripts[utt] = Transcript(text, emotion, where)
    return transcripts


def speaker_utterances(
    root: Path, speaker: str, n_dev: int, n_test: int
) -> dict[str, dict[str, dict[str, str]]]:
    """split -> file name -> utt -> value, for one speaker."""
    spk_dir = root / speaker
    transcripts = read_transcripts(spk_dir / f"{speaker}.txt", speaker)
    out: dict[str, dict[str, dict[str, str]]] = {
        split: {"wav.scp": {}, "text": {}, "utt2spk": {}, "utt2emo": {}, "utt2lang": {}}
        for split in SPLITS
    }
    found: set[str] = set()
    for emotion in EMOTIONS:
        folder = spk_dir / emotion
        if not folder.is_dir():
            raise CorpusError(f"{folder}: emotion folder is missing")
        wavs = sorted(folder.rglob("*.wav"), key=lambda wav: wav.stem)
        for index, wav in enumerate(wavs):
            utt = wav.stem
            if utt not in transcripts:
                raise CorpusError(f"{wav}: no line for {utt} in {spk_dir / f'{speaker}.txt'}")
            entry = transcripts[utt]
            if entry.emotion != emotion:
                raise CorpusError(
                    f"{entry.source}: {utt}: labelled {entry.emotion} but the wav is in {folder}"
                )
            split = split_of(index, n_dev, n_test)
            out[split]["wav.scp"][utt] = str(wav.resolve())
            out[split]["text"][utt] = entry.text
            out[split]["utt2spk"][utt] = speaker
            out[split]["utt2emo"][utt] = emotion
            out[split]["utt2lang"][utt] = language_of(speaker)
            found.add(utt)
    unmatched = sorted(set(transcripts) - found)
    if unmatched:
        log.warning("%s: %d transcript line(s) without a wav skipped, e.g. %s",
                    speaker, len(unmatched), unmatched[0])
    return out


def split_of(index: int, n_dev: int, n_test: int) -> str:
    """ESD's official split by position within a sorted (speaker, emotion) folder."""
    if index < n_dev:
        return "dev"
    return "test" if index < n_dev + n_test else "train"


def prepare_esd(
    root: Path, out_dir: Path, speakers: list[str] | None = None, n_dev: int = 20, n_test: int = 30
) -> dict[str, int]:
    """Write ``out_dir/{train,dev,test}``; returns utterances per split.

    Without ``speakers``, the English speakers 0011-0020 present under ``root`` are used
    (a partial copy or the mini corpus may hold fewer); named speakers must all exist.
    """
    root = Path(root)
    if n_dev < 1 or n_test < 1:
        raise CorpusError(f"n_dev and n_test must be at least 1, got {n_dev} and {n_test}")
    if speakers is None:
        speakers = [spk for spk in ENGLISH_SPEAKERS if (root / spk).is_dir()]
        if not speakers:
            raise CorpusError(f"{root}: none of the ESD speakers 0011-0020 is there")
    merged: dict[str, dict[str, dict[str, str]]] = {split: {} for split in SPLITS}
    for speaker in speakers:
        if not (root / speaker).is_dir():
            raise CorpusError(f"{root / speaker}: speaker folder is missing")
        per_split = speaker_utterances(root, speaker, n_dev, n_test)
        for split, files in per_split.items():
            for name, mapping in files.items():
                merged[split].setdefault(name, {}).update(mapping)
        log.info("ESD speaker %s: %s", speaker,
                 ", ".join(f"{s} {len(per_split[s]['utt2spk'])}" for s in SPLITS))
    return {split: write_checked_dir(Path(out_dir) / split, merged[split]) for split in SPLITS}
