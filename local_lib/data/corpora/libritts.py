"""LibriTTS subsets -> data/{train,dev,test}.

Layout read: ``<root>/<subset>/<spk>/<chapter>/<spk>_<chapter>_<n>_<n>.wav`` with
``<utt>.normalized.txt`` beside each wav. Several train subsets merge into one ``train`` dir.
An utterance whose ``.normalized.txt`` is missing or empty is skipped with a warning: the
``.original.txt`` keeps digits and abbreviations unexpanded, which would poison the text side
of training and ASR-based rewards, and LibriTTS itself drops such utterances from its lists.
"""

from __future__ import annotations

from pathlib import Path

from local_lib.data.corpora.common import CorpusError, log, write_checked_dir

DEFAULT_TRAIN_SETS = ("train-clean-100",)
SHOWN_SKIPS = 5


def read_normalized_text(wav: Path) -> str | None:
    """The one-line normalised transcript of ``wav``, or None when absent or empty."""
    txt = wav.with_name(f"{wav.stem}.normalized.txt")
    if not txt.is_file():
        return None
    try:
        text = " ".join(txt.read_text(encoding="utf-8").split())
    except UnicodeDecodeError as err:
        raise CorpusError(f"{txt}: not valid UTF-8 ({err.reason})") from err
    return text or None


def subset_files(root: Path, subset: str) -> dict[str, dict[str, str]]:
    """wav.scp/text/utt2spk/utt2lang of one subset; speaker ids are LibriTTS' numeric ids."""
    subset_dir = Path(root) / subset
    if not subset_dir.is_dir():
        raise CorpusError(f"{subset_dir}: LibriTTS subset folder is missing")
    files: dict[str, dict[str, str]] = {"wav.scp": {}, "text": {}, "utt2spk": {}, "utt2lang": {}}
    skipped = []
    for wav in sorted(subset_dir.glob("*/*/*.wav")):
        speaker, chapter, utt = wav.parent.parent.name, wav.parent.name, wav.stem
        if not utt.startswith(f"{speaker}_{chapter}_"):
            raise CorpusError(
                f"{wav}: name does not start with '<speaker>_<chapter>_' of its folders"
            )
        text = read_normalized_text(wav)
        if text is None:
            skipped.append(utt)
            continue
        files["wav.scp"][utt] = str(wav.resolve())
        files["text"][utt] = text
        files["utt2spk"][utt] = speaker
        files["utt2lang"][utt] = "en"
    if skipped:
        log.warning("%s: skipped %d utterance(s) without a normalized transcript: %s%s",
                    subset, len(skipped), " ".join(skipped[:SHOWN_SKIPS]),
                    " ..." if len(skipped) > SHOWN_SKIPS else "")
    if not files["utt2spk"]:
        raise CorpusError(f"{subset_dir}: no <spk>/<chapter>/<utt>.wav with a transcript found")
    log.info("%s: %d utterances", subset, len(files["utt2spk"]))
    return files


def merge_subsets(root: Path, subsets: list[str]) -> dict[str, dict[str, str]]:
    """Union of several subsets; an utterance in two of them is an error."""
    merged: dict[str, dict[str, str]] = {}
    origin: dict[str, str] = {}
    for subset in subsets:
        files = subset_files(root, subset)
        for utt in files["utt2spk"]:
            if utt in origin:
                raise CorpusError(f"{utt} is in both {origin[utt]} and {subset}")
            origin[utt] = subset
        for name, mapping in files.items():
            merged.setdefault(name, {}).update(mapping)
    return merged


def prepare_libritts(
    root: Path,
    out_dir: Path,
    train_sets: list[str] | tuple[str, ...] = DEFAULT_TRAIN_SETS,
    dev_set: str = "dev-clean",
    test_set: str = "test-clean",
) -> dict[str, int]:
    """Write ``out_dir/{train,dev,test}``; returns utterances per split."""
    plan = {"train": list(train_sets), "dev": [dev_set], "test": [test_set]}
    return {
        split: write_checked_dir(Path(out_dir) / split, merge_subsets(Path(root), subsets))
        for split, subsets in plan.items()
    }


def prepare_libritts_subsets(root: Path, out_dir: Path, subsets: list[str]) -> int:
    """Write one data dir ``out_dir`` from ``subsets`` merged (an extra training set such as the
    reward ASR's); returns its number of utterances."""
    return write_checked_dir(Path(out_dir), merge_subsets(Path(root), subsets))
