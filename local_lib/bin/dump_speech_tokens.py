"""Stage 2 (codec LM): speech tokens of one shard of a set's dumped features.

    python -m local_lib.bin.dump_speech_tokens --tokenizer dump/speech_tokenizer/tokenizer.pt \\
        --feats-scp dump/test/feats.scp --out dump/test/speech_tokens [--nj N --job J]

Job J of N takes the J-th contiguous shard (Kaldi's split rule) of the C-sorted utterances and
writes ``<out>.J`` (``<out>`` itself when N is 1); the stage merges the shards with ``sort``.
Format: ``local_lib.data.speech_tokens``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import kaldiio
import numpy as np
import torch

from local_lib.data.kaldi_dir import c_sort_key, shard_bounds
from local_lib.data.speech_tokens import write_speech_tokens
from local_lib.models.speech_tokenizer import load_speech_tokenizer

log = logging.getLogger("dump_speech_tokens")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tokenizer", type=Path, required=True)
    p.add_argument("--feats-scp", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--nj", type=int, default=1)
    p.add_argument("--job", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    torch.set_num_threads(1)
    tokenizer = load_speech_tokenizer(args.tokenizer)
    table = kaldiio.load_scp(str(args.feats_scp))
    utts = sorted(table, key=c_sort_key)
    start, end = shard_bounds(len(utts), args.nj, args.job)
    tokens = {}
    for i, utt in enumerate(utts[start:end], start=1):
        try:
            tokens[utt] = tokenizer.encode(np.asarray(table[utt], dtype=np.float32)).tolist()
        except (OSError, ValueError, KeyError) as err:
            raise SystemExit(f"{args.feats_scp}: {utt}: {err}") from err
        if i % 500 == 0 or i == end - start:
            log.info("tokenised %d/%d utterances", i, end - start)
    out = args.out if args.nj == 1 else args.out.with_name(f"{args.out.name}.{args.job}")
    write_speech_tokens(out, tokens)


if __name__ == "__main__":
    main()
