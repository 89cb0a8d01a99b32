"""The entry point every codec-LM method's ``train_<method>`` shares (stage 5).

One command contract, so ``stages_codec_lm.sh`` runs any method alike:

    utils/launch.sh --nproc N -- local_lib.bin.train_<method> --config conf/<m>_mini.yaml \\
        --seed 0 --out-dir exp/tts_<m> --base-dir exp/tts_base/model \\
        --tokenizer dump/speech_tokenizer/tokenizer.pt --train-dir data/train \\
        --tokens dump/train/speech_tokens --reward-model reward_ctc=exp/reward_ctc/model.pt

A method supplies its config dataclass (with a ``train`` TrainSection) and a function that
builds its loop from a ``MethodContext``; this module does the rest: threads, DDP, logging,
seeding, the base LM and tokenizer, the resolved config and command in ``--out-dir``, the
optimizer, the shared Trainer (checkpoints, resume, metrics) and the final ``<out-dir>/model``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from torch import nn

from local_lib.config import load_config, save_run_config
from local_lib.data.speech_tokens import PromptPool
from local_lib.models.codec_lm import CodecLM
from local_lib.models.speech_tokenizer import SpeechTokenizer, load_speech_tokenizer
from local_lib.train.distributed import DistInfo, cleanup, init_distributed
from local_lib.train.trainer import Trainer, seed_everything

LOG = logging.getLogger(__name__)
C = TypeVar("C")


class MethodLoop(Protocol):
    """What the Trainer drives: the trainable module, the loss and the batch of a step."""

    policy: nn.Module

    def loss(self, model: nn.Module, batch: Any) -> Any: ...

    def batch(self, step: int) -> Any: ...


def _named_path(item: str) -> tuple[str, Path]:
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {item!r}")
    return name, Path(path)


def method_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--base-dir", type=Path, required=True, help="CodecLM directory (stage 4)")
    p.add_argument("--tokenizer", type=Path, required=True, help="speech tokenizer (stage 2)")
    p.add_argument("--train-dir", type=Path, required=True, help="data dir of the prompts")
    p.add_argument("--tokens", type=Path, required=True, help="speech tokens of --train-dir")
    p.add_argument(
        "--reward-model", type=_named_path, action="append", default=[], metavar="NAME=PATH",
        help="a stage-3 reward model; repeat for several (order kept)",
    )  # fmt: skip
    p.add_argument("--num-threads", type=int, default=1, help="torch CPU threads per process")
    return p


@dataclass
class MethodContext:
    """What a method's loop is built from."""

    args: argparse.Namespace
    dist: DistInfo
    lm: CodecLM
    tokenizer: SpeechTokenizer

    @property
    def reward_models(self) -> dict[str, Path]:
        return dict(self.args.reward_model)

    def reward_model(self, what: str) -> tuple[str, Path]:
        """The first ``--reward-model`` (the method needs one, ``what`` says for what)."""
        if not self.args.reward_model:
            raise ValueError(
                f"{self.args.config}: this method needs {what}: give --reward-model NAME=PATH"
            )
        return self.args.reward_model[0]

    def prompt_pool(self) -> PromptPool:
        return PromptPool.load(self.args.train_dir, self.args.tokens, self.tokenizer.vocab_size)


def run_codec_lm_method(
    argv: list[str] | None,
    description: str,
    config_cls: type[C],
    build: Callable[[MethodContext, C], MethodLoop],
) -> None:
    """Parse the contract, build the method's loop with ``build(ctx, cfg)`` and train it."""
    args = method_parser(description).parse_args(argv)
    for name, path in args.reward_model:  # named before any model loads, not deep in a loader
        if not path.exists():
            raise FileNotFoundError(f"--reward-model {name}: {path} does not exist (stage 3)")
    torch.set_num_threads(args.num_threads)
    dist_info = init_distributed()
    # rank 0 logs to stderr here; the Trainer adds <out-dir>/train.log
    logging.basicConfig(
        level=logging.INFO if dist_info.is_main else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    cfg = load_config(args.config, config_cls)
    if dist_info.is_main:
        save_run_config(args.out_dir, cfg)
    seed_everything(args.seed)
    lm = CodecLM.from_pretrained(args.base_dir)
    lm.model.to(dist_info.device)
    tokenizer = load_speech_tokenizer(args.tokenizer)
    if lm.layout.num_speech_tokens != tokenizer.vocab_size:
        raise ValueError(
            f"{args.base_dir} has {lm.layout.num_speech_tokens} speech tokens, "
            f"{args.tokenizer} {tokenizer.vocab_size}"
        )
    loop = build(MethodContext(args, dist_info, lm, tokenizer), cfg)
    train = cfg.train  # type: ignore[attr-defined]
    optimizer = torch.optim.AdamW(
        loop.policy.parameters(), lr=train.lr, weight_decay=train.weight_decay
    )
    if hasattr(loop, "attach"):
        loop.attach(optimizer)
    trainer = Trainer(
        loop.policy, optimizer, train.trainer_config(args.out_dir), dist_info=dist_info
    )
    LOG.info("%s: %d steps, %d rank(s)", args.config, train.num_steps, dist_info.world_size)
    trainer.fit(loop.loss, loop.batch)
    if dist_info.is_main:
        lm.save_pretrained(args.out_dir / "model")
        LOG.info("wrote %s", args.out_dir / "model")
    cleanup()
