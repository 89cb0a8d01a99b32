"""Helpers every corpus preparer needs: strict text reading and a checked data-dir write."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

from local_lib.data.kaldi_dir import validate_data_dir, write_data_dir

log = logging.getLogger("prepare_data")


class CorpusError(ValueError):
    """Corpus files that do not have the expected layout; the message names file and line."""


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; a UTF-8 BOM is allowed, other bytes are not."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CorpusError(f"{path}: cannot read: {err}") from err
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as err:
            raise CorpusError(f"{path}:{number}: not valid UTF-8 ({err.reason})") from err
        if text.strip():
            yield number, text


def write_checked_dir(out_dir: Path, files: Mapping[str, Mapping[str, str]]) -> int:
    """Write a data dir and validate it (audio unchecked) so a preparer bug cannot pass silently."""
    if not files["utt2spk"]:
        raise CorpusError(f"{out_dir}: no utterances to write")
    write_data_dir(out_dir, files)
    problems = validate_data_dir(out_dir, check_audio=False)
    if problems:
        raise CorpusError(
            f"{out_dir}: prepared data dir is inconsistent:\n"
            + "\n".join(str(problem) for problem in problems)
        )
    log.info("%s: %d utterances, %d speakers", out_dir, len(files["utt2spk"]),
             len(set(files["utt2spk"].values())))
    return len(files["utt2spk"])
