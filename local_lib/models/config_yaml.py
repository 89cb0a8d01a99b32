"""Log set-up, the command line and the config reading shared by the training tools."""

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any, TypeVar

from local_lib.config import load_config, save_run_config

T = TypeVar("T")


def setup_logging(log_file: Path) -> None:
    """Log to stderr and to ``log_file`` (appending, so a resumed run keeps its history)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(log_file)],
        force=True,
    )


def stage3_parser(description: str) -> argparse.ArgumentParser:
    """The command line every stage-3 training tool shares, so tts_rl.sh calls them alike."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--train-dir", type=Path, required=True)
    p.add_argument("--valid-dir", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--max-utts", type=int, default=None, help="override the config's max_utts")
    p.add_argument("--seed", type=int, default=None, help="override train.seed")
    # The codec-LM family passes these to every stage-3 trainer but train_evaluator; a model
    # trained on speech tokens (DiffRO's Token2Text) reads them, the audio models ignore them.
    p.add_argument("--tokenizer", type=Path, default=None, help="speech tokenizer (stage 2)")
    p.add_argument("--train-tokens", type=Path, default=None, help="speech tokens of --train-dir")
    p.add_argument("--valid-tokens", type=Path, default=None, help="speech tokens of --valid-dir")
    # Every stage-3 trainer gets it; the ASRs take their output units from it.
    p.add_argument(
        "--token-list",
        type=Path,
        default=None,
        help="stage 2's text units (dump/token_list); without it, characters of the training text",
    )
    p.add_argument(
        "--num-threads",
        type=int,
        default=1,
        help="torch CPU threads (1 default: several OpenMP threads on a busy or shared CPU "
        "run many times slower than one)",
    )
    return p


def stage3_config(args: argparse.Namespace, cls: type[T]) -> T:
    """``--config`` as ``cls`` with ``--seed`` (``train.seed``) and ``--max-utts`` applied, saved
    as resolved to ``--out-dir`` with the command, so the record shows what was trained."""
    conf: Any = load_config(args.config, cls)
    if args.seed is not None:
        conf = dataclasses.replace(conf, train=dataclasses.replace(conf.train, seed=args.seed))
    if args.max_utts is not None:
        conf = dataclasses.replace(conf, max_utts=args.max_utts)
    save_run_config(args.out_dir, conf)
    return conf
