"""Stage 1: a real corpus tree -> Kaldi data dirs.

Usage:
  python -m local_lib.bin.prepare_data --corpus esd --root R --out-dir data [--speakers 0011-0020]
      [--n-dev 20 --n-test 30]                              -> data/{train,dev,test}
  python -m local_lib.bin.prepare_data --corpus libritts --root R --out-dir data
      [--train-sets train-clean-100,train-clean-360 --dev-set dev-clean --test-set test-clean]
  python -m local_lib.bin.prepare_data --corpus libritts --root R --train-only \
      --train-sets train-clean-360 --out-dir data/train_asr    -> data/train_asr only
  python -m local_lib.bin.prepare_data --corpus seedtts --root R --lang en --out-dir data/test
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from local_lib.data.corpora.common import CorpusError
from local_lib.data.corpora.esd import parse_speakers, prepare_esd
from local_lib.data.corpora.libritts import (
    DEFAULT_TRAIN_SETS,
    prepare_libritts,
    prepare_libritts_subsets,
)
from local_lib.data.corpora.seedtts import LANGUAGES, prepare_seedtts
from local_lib.data.kaldi_dir import DataDirError

log = logging.getLogger("prepare_data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument("--corpus", choices=("esd", "libritts", "seedtts"), required=True)
    parser.add_argument("--root", type=Path, required=True, help="corpus root folder")
    parser.add_argument("--out-dir", type=Path, required=True,
                        help="parent of train/dev/test (esd, libritts) or the data dir (seedtts, "
                        "libritts --train-only)")
    esd = parser.add_argument_group("esd")
    esd.add_argument("--speakers", help="e.g. 0011-0020 or 0011,0012 (default: 0011-0020 present)")
    esd.add_argument("--n-dev", type=int, default=20, help="first N per (speaker, emotion) -> dev")
    esd.add_argument("--n-test", type=int, default=30, help="next N per (speaker, emotion) -> test")
    libritts = parser.add_argument_group("libritts")
    libritts.add_argument("--train-sets", default=",".join(DEFAULT_TRAIN_SETS),
                          help="comma-separated subsets merged into train")
    libritts.add_argument("--dev-set", default="dev-clean")
    libritts.add_argument("--test-set", default="test-clean")
    libritts.add_argument("--train-only", action="store_true",
                          help="write --out-dir itself from --train-sets alone (no dev/test): "
                          "an extra training set such as the reward ASR's")
    seedtts = parser.add_argument_group("seedtts")
    seedtts.add_argument("--lang", choices=LANGUAGES, default="en")
    return parser


def run(args: argparse.Namespace) -> dict[str, int]:
    """Dispatch to the corpus preparer; returns utterances per written data dir."""
    if args.corpus == "esd":
        speakers = parse_speakers(args.speakers) if args.speakers else None
        return prepare_esd(args.root, args.out_dir, speakers, args.n_dev, args.n_test)
    if args.corpus == "libritts":
        train_sets = [name for name in args.train_sets.split(",") if name]
        if args.train_only:
            count = prepare_libritts_subsets(args.root, args.out_dir, train_sets)
            return {str(args.out_dir): count}
        return prepare_libritts(args.root, args.out_dir, train_sets, args.dev_set, args.test_set)
    return {str(args.out_dir): prepare_seedtts(args.root, args.out_dir, args.lang)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    try:
        counts = run(args)
    except (CorpusError, DataDirError) as err:
        log.error("%s", err)
        return 1
    log.info("%s from %s: %s", args.corpus, args.root,
             ", ".join(f"{name} {count}" for name, count in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
