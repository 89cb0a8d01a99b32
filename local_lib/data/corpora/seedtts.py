"""seed-tts-eval test lists -> one data dir for zero-shot evaluation.

Layout read: ``<root>/<en|zh>/meta.lst`` with ``utt|prompt_text|prompt_wav|text`` lines
(some lists add a fifth field, the ground-truth wav), wav paths relative to the list. The
list's input audio is the prompt, so wav.scp holds the prompt wav, while ``text`` is the target
text to synthesise; utt2prompt_wav and utt2prompt_text say the same thing explicitly. Each
prompt is its own speaker (utt2spk maps an utterance to itself). When every case has its
ground-truth recording (the fifth field, or ``<lang>/wavs/<utt>.wav`` beside the list), it goes
to utt2target_wav, so the recipes can score it as the ceiling of the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from local_lib.data.corpora.common import CorpusError, read_lines, write_checked_dir

LANGUAGES = ("en", "zh")


@dataclass(frozen=True)
class SeedTTSItem:
    """One test case: clone the voice of ``prompt_wav`` (saying ``prompt_text``) saying ``text``."""

    utt: str
    prompt_text: str
    prompt_wav: Path
    text: str
    target_wav: Path | None = None  # the ground-truth recording, where the list has one


def read_seedtts_list(path: Path) -> list[SeedTTSItem]:
    """Parse a meta.lst; prompt wavs resolved against the list's folder and required to exist."""
    path = Path(path)
    items: list[SeedTTSItem] = []
    seen: dict[str, int] = {}
    for number, line in read_lines(path):
        fields = [field.strip() for field in line.split("|")]
        where = f"{path}:{number}"
        if len(fields) not in (4, 5) or not all(fields[:4]):
            raise CorpusError(f"{where}: expected 'utt|prompt_text|prompt_wav|text', got {line!r}")
        utt, prompt_text, prompt_wav, text = fields[:4]
        if any(ch.isspace() for ch in utt):
            raise CorpusError(f"{where}: utterance id {utt!r} contains whitespace")
        if utt in seen:
            raise CorpusError(f"{where}: {utt}: duplicate utterance (first on line {seen[utt]})")
        wav = (path.parent / prompt_wav).resolve()
        if not wav.is_file():
            raise CorpusError(f"{where}: {utt}: prompt wav {wav} does not exist")
        seen[utt] = number
        target = (path.parent / (fields[4] if len(fields) == 5 else f"wavs/{utt}.wav")).resolve()
        items.append(SeedTTSItem(utt, " ".join(prompt_text.split()), wav, " ".join(text.split()),
                                 target if target.is_file() else None))  # fmt: skip
    if not items:
        raise CorpusError(f"{path}: no test cases in the list")
    return items


def prepare_seedtts(root: Path, out_dir: Path, lang: str = "en") -> int:
    """Write the data dir of ``<root>/<lang>/meta.lst`` at ``out_dir``; returns its size."""
    if lang not in LANGUAGES:
        raise CorpusError(f"unknown seed-tts-eval language {lang!r}; choose from {LANGUAGES}")
    items = read_seedtts_list(Path(root) / lang / "meta.lst")
    files = {
        "wav.scp": {item.utt: str(item.prompt_wav) for item in items},
        "text": {item.utt: item.text for item in items},
        "utt2spk": {item.utt: item.utt for item in items},
        "utt2prompt_wav": {item.utt: str(item.prompt_wav) for item in items},
        "utt2prompt_text": {item.utt: item.prompt_text for item in items},
        "utt2lang": {item.utt: lang for item in items},
    }
    if all(item.target_wav is not None for item in items):
        files["utt2target_wav"] = {item.utt: str(item.target_wav) for item in items}
    return write_checked_dir(Path(out_dir), files)
