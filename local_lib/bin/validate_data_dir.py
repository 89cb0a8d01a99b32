"""Check a Kaldi data dir and report every problem as ``file:line: utt: message``.

Usage: python -m local_lib.bin.validate_data_dir [--no-audio] [--min-dur SEC]
           [--min-utts-per-spk N] <data-dir>
Exit status 1 when anything is wrong, so a recipe stops before stage 2 trusts the dir.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from local_lib.data.kaldi_dir import (
    MIN_AUDIO_SECONDS,
    extra_file_names,
    read_kv,
    validate_data_dir,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument(
        "--no-audio", action="store_true", help="skip opening every wav (fast, for huge dirs)"
    )
    parser.add_argument(
        "--min-dur", type=float, default=MIN_AUDIO_SECONDS,
        help="shortest usable audio in seconds (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--min-utts-per-spk", type=int, default=1,
        help="fewest utterances per speaker (2 where each is prompted by another of its speaker)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    problems = validate_data_dir(
        args.data_dir, not args.no_audio, args.min_dur, args.min_utts_per_spk
    )
    if problems:
        for problem in problems:
            print(f"{args.data_dir}/{problem}", file=sys.stderr)
        print(
            f"validate_data_dir: {args.data_dir}: {len(problems)} problem(s)", file=sys.stderr
        )
        return 1
    utts = len(read_kv(args.data_dir / "utt2spk"))
    speakers = len(read_kv(args.data_dir / "spk2utt"))
    extras = " ".join(extra_file_names(args.data_dir)) or "none"
    audio = "not checked" if args.no_audio else "checked"
    print(
        f"validate_data_dir: {args.data_dir} OK: {utts} utterances, {speakers} speakers, "
        f"extra files: {extras}, audio {audio}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
