"""Combine Kaldi data dirs into one, refusing an utterance id that two of them hold.

Usage: python -m local_lib.bin.combine_data <dest> <src1> <src2> [<src>...]
Kaldi's utils/combine_data.sh, strictly: every source is read as strictly as any stage reads
it; a duplicate utterance id is an error naming the id and both dirs (Kaldi keeps one silently);
a per-utterance file (utt2*, feats.scp) that only some sources have is left out with a warning
naming the sources without it, since a partial file would fail validation. Dirs with segments
are refused (their recording ids would need the same care). spk2utt is rebuilt; files of those
kinds left in <dest> by an earlier combination are removed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from local_lib.data.kaldi_dir import (
    DataDir,
    DataDirError,
    extra_file_names,
    load_data_dir,
    write_data_dir,
)

log = logging.getLogger("combine_data")


def combined_files(sources: list[DataDir]) -> dict[str, dict[str, str]]:
    """wav.scp, text, utt2spk and the extras every source has, merged by utterance id."""
    origin: dict[str, Path] = {}
    for data in sources:
        if data.segments is not None:
            raise DataDirError(f"{data.path}: has segments; combine_data reads dirs without them")
        for utt in data.utts:
            if utt in origin:
                raise DataDirError(f"{utt}: utterance id in both {origin[utt]} and {data.path}")
            origin[utt] = data.path
    shared = set.intersection(*(set(data.extras) for data in sources))
    for name in sorted(set().union(*(data.extras for data in sources)) - shared):
        lacking = " ".join(str(data.path) for data in sources if name not in data.extras)
        log.warning("%s is left out: not in %s", name, lacking)
    files: dict[str, dict[str, str]] = {}
    for data in sources:
        parts = {"wav.scp": data.wav_scp, "text": data.text, "utt2spk": data.utt2spk}
        parts.update({name: data.extras[name] for name in shared})
        for name, mapping in parts.items():
            files.setdefault(name, {}).update(mapping)
    return files


def combine_data(dest: Path, srcs: list[Path]) -> int:
    """Write the combination of `srcs` to `dest`; returns its number of utterances."""
    for src in srcs:
        if src.resolve() == dest.resolve():
            raise DataDirError(f"{dest}: destination is one of the sources")
    files = combined_files([load_data_dir(src) for src in srcs])
    if dest.is_dir():
        for name in extra_file_names(dest):
            if name not in files:
                (dest / name).unlink()
    write_data_dir(dest, files)
    return len(files["utt2spk"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("srcs", type=Path, nargs="+", metavar="src")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if len(args.srcs) < 2:
        parser.error("give at least two source dirs")
    try:
        count = combine_data(args.dest, args.srcs)
    except DataDirError as err:
        log.error("%s", err)
        return 1
    log.info("%s: %d utterances from %s", args.dest, count, " ".join(map(str, args.srcs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
