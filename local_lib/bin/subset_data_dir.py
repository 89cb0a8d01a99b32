"""Copy part of a Kaldi data dir: the utterances in a list, or the first N of every speaker.

Usage: python -m local_lib.bin.subset_data_dir (--utt-list FILE | --per-spk N) <src> <dest>
Every per-utterance file is filtered (wav.scp by recording when there are segments) and spk2utt
is rebuilt. Small test sets for quick runs are made this way, e.g. CI's debug recipes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from local_lib.data.kaldi_dir import DataDirError, load_data_dir, read_kv, scan_kv, write_data_dir

log = logging.getLogger("subset_data_dir")


def read_utt_list(path: Path, known: set[str]) -> set[str]:
    """First field of every line; an utterance the source does not have is an error."""
    wanted = set()
    for entry in scan_kv(path).lines:
        if entry.key not in known:
            raise DataDirError(f"{path}:{entry.line}: {entry.key}: not in the source data dir")
        wanted.add(entry.key)
    if not wanted:
        raise DataDirError(f"{path}: no utterances listed")
    return wanted


def first_per_speaker(spk2utt: dict[str, str], n: int) -> set[str]:
    return {utt for utts in spk2utt.values() for utt in utts.split()[:n]}


def subset_data_dir(src: Path, dest: Path, keep: set[str]) -> int:
    data = load_data_dir(src)
    per_utt = {"text": data.text, "utt2spk": data.utt2spk, **data.extras}
    files = {
        name: {u: v for u, v in mapping.items() if u in keep} for name, mapping in per_utt.items()
    }
    if data.segments is not None:
        raw = {u: v for u, v in read_kv(src / "segments").items() if u in keep}
        files["segments"] = raw
        recordings = {data.segments[u].recording for u in raw}
        files["wav.scp"] = {r: p for r, p in data.wav_scp.items() if r in recordings}
    else:
        files["wav.scp"] = {u: p for u, p in data.wav_scp.items() if u in keep}
    write_data_dir(dest, files)
    return len(files["utt2spk"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--utt-list", type=Path, help="file whose first field per line is an utterance id"
    )
    how.add_argument("--per-spk", type=int, help="keep the first N utterances of every speaker")
    parser.add_argument("src", type=Path)
    parser.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        if args.dest.resolve() == args.src.resolve():
            raise DataDirError(f"{args.dest}: destination is the source")
        source = load_data_dir(args.src)
        utt2spk = source.utt2spk
        if args.utt_list is not None:
            keep = read_utt_list(args.utt_list, set(utt2spk))
        elif args.per_spk >= 1:
            keep = first_per_speaker(source.spk2utt, args.per_spk)
        else:
            raise DataDirError(f"--per-spk must be at least 1, got {args.per_spk}")
        count = subset_data_dir(args.src, args.dest, keep)
    except DataDirError as err:
        log.error("%s", err)
        return 1
    log.info("%s: %d of %d utterances from %s", args.dest, count, len(utt2spk), args.src)
    return 0


if __name__ == "__main__":
    sys.exit(main())
