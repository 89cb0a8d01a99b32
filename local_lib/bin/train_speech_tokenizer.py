"""Stage 2 (codec LM): train the speech tokenizer on the training set's dumped log-mel features.

    python -m local_lib.bin.train_speech_tokenizer --config conf/speech_tokenizer_mini.yaml \\
        --feats-config conf/feats.yaml --feats-scp dump/train/feats.scp \\
        --out dump/speech_tokenizer/tokenizer.pt [--seed N]

The config holds ``SpeechTokenizerConfig`` keys; ``max_utts`` trains on an evenly spaced
subset of that many utterances (k-means over a full corpus's frames would not fit in memory).
The output is written atomically and loads with ``load_speech_tokenizer``; beside it go
``config.yaml`` (the resolved config, ``--seed`` applied) and ``command.sh``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import kaldiio
import numpy as np
import torch

from local_lib.config import load_config, save_run_config
from local_lib.data.features import LogMelConfig
from local_lib.models.config_yaml import setup_logging
from local_lib.models.speech_tokenizer import KMeansMelTokenizer, SpeechTokenizerConfig

log = logging.getLogger("train_speech_tokenizer")


def load_feats(feats_scp: Path, max_utts: int | None) -> list[np.ndarray]:
    """Features of every (or an evenly spaced ``max_utts``) utterance, in C-locale id order."""
    table = kaldiio.load_scp(str(feats_scp))
    utts = sorted(table, key=lambda u: u.encode("utf-8"))
    if not utts:
        raise ValueError(f"{feats_scp}: no utterances")
    if max_utts is not None and max_utts < len(utts):
        utts = [utts[i] for i in np.linspace(0, len(utts) - 1, max_utts).round().astype(int)]
    feats = []
    for i, utt in enumerate(utts, start=1):
        try:
            feats.append(np.array(table[utt], dtype=np.float32))
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"{feats_scp}: {utt}: cannot read features: {err}") from err
        if i % 1000 == 0:
            log.info("read %d/%d feature matrices", i, len(utts))
    return feats


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", type=Path, required=True)
    p.add_argument(
        "--feats-config", type=Path, required=True, help="the LogMelConfig of the dumped features"
    )
    p.add_argument("--feats-scp", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument("--num-threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    setup_logging(args.out.parent / "train.log")
    cfg = load_config(args.config, SpeechTokenizerConfig)
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    save_run_config(args.out.parent, cfg)
    mel_cfg = LogMelConfig.from_yaml(args.feats_config)
    feats = load_feats(args.feats_scp, cfg.max_utts)
    log.info(
        "training %d tokens (stack %d) on %d utterances", cfg.num_tokens, cfg.stack, len(feats)
    )
    tokenizer = KMeansMelTokenizer.train(feats, cfg, mel_cfg)
    tokenizer.save(args.out)
    log.info("wrote %s (%.2f tokens/s)", args.out, tokenizer.token_rate)


if __name__ == "__main__":
    main()
