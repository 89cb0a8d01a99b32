"""Synthesise a built-in mini corpus (ESD, LibriTTS or seed-tts-eval layout) with espeak-ng.

mini_asr is an ASR-only LibriTTS subset (train-clean-360) for the reward ASRs.

Usage: python -m local_lib.bin.make_mini_corpus --corpus mini_esd --out-dir DIR --seed 0 --nj 2
A finished DIR is left alone; an interrupted build is redone from scratch.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from local_lib.data.mini.build import MiniCorpusError
from local_lib.data.mini.corpora import CORPORA, make_mini_corpus
from local_lib.data.mini.espeak import EspeakError
from local_lib.data.mini.sentences import SentenceError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, choices=sorted(CORPORA))
    parser.add_argument("--out-dir", required=True, type=Path, help="corpus root to create")
    parser.add_argument("--seed", type=int, default=0, help="sentences and prosody jitter")
    parser.add_argument("--nj", type=int, default=1, help="parallel espeak-ng workers")
    parser.add_argument(
        "--max-sentences", type=int, default=None,
        help="cap sentences per speaker/folder (for quick tests; changes the corpus)",
    )
    args = parser.parse_args(argv)
    if args.nj < 1:
        parser.error("--nj must be at least 1")
    if args.max_sentences is not None and args.max_sentences < 1:
        parser.error("--max-sentences must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    try:
        make_mini_corpus(args.corpus, args.out_dir, args.seed, args.nj, args.max_sentences)
    except (EspeakError, MiniCorpusError, SentenceError) as err:
        logging.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
