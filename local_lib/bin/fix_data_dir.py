"""Repair a Kaldi data dir the way Kaldi's fix_data_dir.sh does, saying what was dropped.

Usage: python -m local_lib.bin.fix_data_dir [--no-audio] [--min-dur SEC] <data-dir>
Sorts every file, keeps only utterances present (with a value) in wav.scp (or segments),
text, utt2spk and every extra per-utterance file and whose audio exists, opens and lasts at
least --min-dur seconds (--no-audio: only that the file exists), regenerates spk2utt, keeps the
originals in <data-dir>/.backup/ and lists every dropped utterance with its reason in
<data-dir>/.backup/dropped.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from local_lib.data.kaldi_dir import (
    MIN_AUDIO_SECONDS,
    REQUIRED_FILES,
    DataDirError,
    check_wav,
    extra_file_names,
    parse_segment,
    scan_kv,
    write_data_dir,
)

log = logging.getLogger("fix_data_dir")
SHOWN_DROPS = 20


@dataclass
class FixReport:
    """Outcome of a repair: utterances kept and the reason each dropped one went."""

    kept: int
    dropped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        reasons = Counter(self.dropped.values())
        detail = "; ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
        return (
            f"kept {self.kept} of {self.kept + len(self.dropped)} utterances, "
            f"dropped {len(self.dropped)}" + (f": {detail}" if detail else "")
        )


def _valid_entries(path: Path) -> dict[str, str]:
    """Lines that carry a value; duplicates keep their first line, undecodable lines vanish."""
    return {entry.key: entry.value for entry in scan_kv(path).lines if entry.value}


def _usable_recordings(
    data_dir: Path, check_audio: bool, min_seconds: float
) -> tuple[dict[str, str], dict[str, str]]:
    """wav.scp's recordings whose audio can be used, and why each other one cannot."""
    usable, unusable = {}, {}
    for rec, value in _valid_entries(data_dir / "wav.scp").items():
        if check_audio:
            reason = check_wav(value, min_seconds)
        else:
            reason = None if Path(value).is_file() else f"wav file does not exist: {value}"
        if reason is None:
            usable[rec] = value
        else:
            unusable[rec] = reason
    return usable, unusable


def _utterance_sources(
    data_dir: Path, check_audio: bool, min_seconds: float
) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Per-utterance files by name, and reasons for utterances lost to bad segments or audio."""
    files = {name: _valid_entries(data_dir / name) for name in ("text", "utt2spk")}
    files.update({name: _valid_entries(data_dir / name) for name in extra_file_names(data_dir)})
    recordings, unusable = _usable_recordings(data_dir, check_audio, min_seconds)
    bad: dict[str, str] = {}
    if (data_dir / "segments").is_file():
        segments = {}
        for utt, value in _valid_entries(data_dir / "segments").items():
            try:
                recording = parse_segment(value).recording
            except ValueError:
                bad[utt] = "malformed segments line"
                continue
            if recording in recordings:
                segments[utt] = value
            elif recording in unusable:
                bad[utt] = unusable[recording]
            else:
                bad[utt] = "segment recording not in wav.scp"
        files["segments"] = segments
    else:
        files["wav.scp"] = recordings
        bad.update(unusable)
    return files, bad


def fix_data_dir(
    data_dir: Path, check_audio: bool = True, min_seconds: float = MIN_AUDIO_SECONDS
) -> FixReport:
    """Filter, sort and rewrite ``data_dir`` in place after backing it up."""
    missing = [name for name in REQUIRED_FILES[:3] if not (data_dir / name).is_file()]
    if missing:
        raise DataDirError(f"{data_dir}: cannot fix without {', '.join(missing)}")
    files, dropped = _utterance_sources(data_dir, check_audio, min_seconds)
    every_utt = set().union(*files.values()) | set(dropped)
    kept = set.intersection(*(set(mapping) for mapping in files.values())) - set(dropped)
    for utt in every_utt - kept:
        if utt not in dropped:
            absent = next(name for name, mapping in files.items() if utt not in mapping)
            dropped[utt] = f"missing from (or empty in) {absent}"
    if not kept:
        raise DataDirError(f"{data_dir}: no utterance survives ({FixReport(0, dropped).summary()})")
    backup = data_dir / ".backup"
    backup.mkdir(exist_ok=True)
    names = [*REQUIRED_FILES, "segments", *extra_file_names(data_dir)]
    for name in names:
        if (data_dir / name).is_file():
            shutil.copy2(data_dir / name, backup / name)
    output = {
        name: {utt: value for utt, value in mapping.items() if utt in kept}
        for name, mapping in files.items()
    }
    if "segments" in output:
        recordings = {parse_segment(v).recording for v in output["segments"].values()}
        output["wav.scp"] = {
            rec: path
            for rec, path in _valid_entries(data_dir / "wav.scp").items()
            if rec in recordings
        }
    write_data_dir(data_dir, output)
    (backup / "dropped").write_text(
        "".join(f"{utt}\t{reason}\n" for utt, reason in sorted(dropped.items())), encoding="utf-8"
    )
    return FixReport(len(kept), dropped)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument(
        "--no-audio", action="store_true", help="only check that each wav file exists"
    )
    parser.add_argument(
        "--min-dur", type=float, default=MIN_AUDIO_SECONDS,
        help="drop audio shorter than this many seconds (default %(default)s)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        report = fix_data_dir(args.data_dir, not args.no_audio, args.min_dur)
    except DataDirError as err:
        log.error("%s", err)
        return 1
    for utt, reason in sorted(report.dropped.items())[:SHOWN_DROPS]:
        log.info("dropped %s: %s", utt, reason)
    if len(report.dropped) > SHOWN_DROPS:
        log.info("... and %d more dropped", len(report.dropped) - SHOWN_DROPS)
    log.info(
        "%s: %s (originals in %s, every dropped utterance in %s)", args.data_dir,
        report.summary(), args.data_dir / ".backup", args.data_dir / ".backup/dropped",
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
