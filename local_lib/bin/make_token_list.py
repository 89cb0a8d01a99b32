"""Stage 2: the text units every model that reads text shares (ESPnet's ``--token_type``).

    python -m local_lib.bin.make_token_list --config conf/token_list_mini.yaml \\
        --text data/train/text --out-dir dump/token_list [--token-type bpe --nbpe 100]

Reads ``TokenListConfig`` (``token_type`` char | bpe, ``nbpe``, ``bpemode`` unigram | bpe,
``user_symbols``); the options given here override it. With ``bpe`` it trains a sentencepiece
model on the normalised transcripts of ``--text`` and writes ``bpe.model`` and ``tokens.txt``;
with ``char`` only the record (each model takes the characters of its own training text). The
resolved settings and the text's SHA-256 go to ``<out-dir>/config.yaml``; when they are what is
already there, nothing is rewritten, so the files keep their content and what was trained on
them is not made stale.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from local_lib.config import load_config
from local_lib.data.kaldi_dir import read_kv
from local_lib.data.text_units import TokenListConfig, make_token_list


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", type=Path, required=True, help="conf/token_list*.yaml")
    p.add_argument("--text", type=Path, required=True, help="the training set's Kaldi text file")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--token-type", choices=("char", "bpe"), default=None)
    p.add_argument("--nbpe", type=int, default=None, help="sentencepiece vocabulary size")
    p.add_argument("--bpemode", choices=("unigram", "bpe"), default=None)
    args = p.parse_args(argv)
    conf = load_config(args.config, TokenListConfig)
    overrides = {"token_type": args.token_type, "nbpe": args.nbpe, "bpemode": args.bpemode}
    conf = dataclasses.replace(conf, **{k: v for k, v in overrides.items() if v is not None})
    if conf.nbpe < 1:
        p.error(f"--nbpe must be positive, got {conf.nbpe}")
    texts = list(read_kv(args.text).values())
    if not texts:
        p.error(f"{args.text}: no transcripts")
    made = make_token_list(conf, texts, args.out_dir, str(args.text))
    state = "written" if made else "up to date"
    if conf.token_type == "bpe":
        what = f"bpe ({conf.bpemode}, {conf.nbpe}) units of {args.text}, {state}"
    else:
        what = f"char units (each model takes the characters of its training text), {state}"
    print(f"make_token_list: {args.out_dir}: {what}")


if __name__ == "__main__":
    main()
