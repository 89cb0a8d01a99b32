"""Stage 4 (codec LM): supervised training of the base TTS on zero-shot prompted utterances.

    utils/launch.sh --nproc N -- local_lib.bin.train_codec_lm --config conf/codec_lm_mini.yaml \\
        --seed 0 --tokenizer dump/speech_tokenizer/tokenizer.pt \\
        --train-dir data/train --train-tokens dump/train/speech_tokens \\
        --valid-dir data/dev --valid-tokens dump/dev/speech_tokens --out-dir exp/tts_base \\
        --token-list dump/token_list

Each example is ``[prompt text + text ; <speech> prompt tokens + target tokens <end>]`` with the
loss on the target part only; the prompt is another utterance of the same speaker
(``pick_prompts``, re-drawn every epoch). Config: ``pretrained`` (a Llasa-style directory that
is loaded and fine-tuned instead of building ``model``), ``positions`` (``sequential`` or
``text_aligned``, see ``local_lib.models.codec_lm``), ``model`` (LlamaConfig sizes),
``train`` (``SFTTrainSection``), ``sample`` (read by synthesis, not here). The Trainer writes
``checkpoints/`` (a killed run resumes), ``metrics.jsonl`` (loss, dev_loss, lr, grad_norm) and
``train.log`` under ``--out-dir``; the model goes to ``<out-dir>/model`` (CodecLM format).
The text side's units are stage 2's (``--token-list``: the characters of the training text, or
the shared sentencepiece model); a ``pretrained`` Llasa-style model keeps its own tokenizer.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from local_lib.config import load_config, save_run_config
from local_lib.data.speech_tokens import PromptPool
from local_lib.data.text_units import units_for
from local_lib.models.codec_lm import POSITION_SCHEMES, CodecLM
from local_lib.models.fit import length_batches
from local_lib.models.speech_tokenizer import load_speech_tokenizer
from local_lib.train.config import TrainSection
from local_lib.train.distributed import DistInfo, cleanup, init_distributed
from local_lib.train.trainer import Trainer, seed_everything

log = logging.getLogger("train_codec_lm")


@dataclass(frozen=True)
class SFTTrainSection(TrainSection):
    batch_size: int = 16  # examples per optimizer step, over all processes
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    num_steps: int = 2000
    save_every: int = 200
    log_every: int = 20
    valid_every: int = 200  # a multiple of log_every: dev loss is logged with the step
    valid_utts: int = 200  # evenly spaced dev utterances for the dev loss
    max_length: int | None = None  # longest example in LM tokens (default: the model's limit)
    loss_on_prompt_speech: bool = False  # train on the prompt's speech too (dev: target only)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.valid_every % self.log_every:
            raise ValueError(
                f"valid_every {self.valid_every} is not a multiple of log_every {self.log_every}"
            )


@dataclass(frozen=True)
class SampleSection:
    """``CodecLM.sample`` settings for synthesis; ``max_new_tokens`` must be set to synthesise."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_new_tokens: int | None = None


@dataclass(frozen=True)
class CodecLMConfig:
    """A codec_lm YAML: ``model`` maps onto ``transformers.LlamaConfig`` (checked by CodecLM)."""

    pretrained: str | None = None  # a Llasa-style directory, loaded instead of building ``model``
    positions: str = "sequential"
    model: Mapping[str, Any] = field(default_factory=dict)
    train: SFTTrainSection = SFTTrainSection()
    sample: SampleSection = SampleSection()
    # an emotion token (the training data's utt2emo) before the target text, and a prompt of
    # the speaker in another emotion (CodecLM.zero_shot_prompt_ids); not with ``pretrained``
    emotion_instruction: bool = False

    def __post_init__(self) -> None:
        if self.positions not in POSITION_SCHEMES:
            raise ValueError(f"positions {self.positions!r}: expected one of {POSITION_SCHEMES}")
        if self.emotion_instruction and self.pretrained:
            raise ValueError("emotion_instruction builds its own vocabulary: not with pretrained")


def lr_factor(cfg: SFTTrainSection):
    """Linear warm-up, then cosine decay to ``min_lr_ratio``."""

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.num_steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


Example = tuple[list[int], list[int]]  # (prompt ids, target speech tokens)


def prompted_examples(
    lm: CodecLM, pool: PromptPool, utts: Sequence[str], seed: int, max_length: int
) -> list[Example]:
    """Each utterance with its speaker prompt, leaving out those longer than ``max_length``."""
    prompts = lm.zero_shot_prompt_ids(utts, pool, seed)
    pairs = [(prompts[u], pool.tokens[u]) for u in utts]
    kept = [(p, t) for p, t in pairs if len(p) + len(t) + 1 <= max_length]
    if len(kept) < len(pairs):
        log.info(
            "%s: %d of %d examples longer than %d tokens left out",
            pool.source, len(pairs) - len(kept), len(pairs), max_length,
        )  # fmt: skip
    if not kept:
        raise ValueError(f"{pool.source}: no example fits in {max_length} tokens")
    return kept


def dev_batches(
    lm: CodecLM, pool: PromptPool, cfg: SFTTrainSection, seed: int, max_length: int
) -> list[dict[str, torch.Tensor]]:
    """Fixed batches of ``valid_utts`` evenly spaced dev utterances, prompts drawn once."""
    utts = sorted(pool.utt2spk)
    if cfg.valid_utts < len(utts):
        utts = [utts[i] for i in np.linspace(0, len(utts) - 1, cfg.valid_utts).round().astype(int)]
    pairs = prompted_examples(lm, pool, utts, seed, max_length)
    return [
        lm.training_batch(*zip(*pairs[i : i + cfg.batch_size], strict=True))
        for i in range(0, len(pairs), cfg.batch_size)
    ]


class SFTData:
    """Batches derived from the micro-step index alone, so a resumed run sees the same data.

    Epoch ``e`` re-draws the speaker prompts with seed ``seed * 100003 + e`` and orders the
    examples in length buckets; each process takes its stride of every global batch.
    """

    def __init__(
        self,
        lm: CodecLM,
        pool: PromptPool,
        cfg: SFTTrainSection,
        seed: int,
        dist: DistInfo,
        max_length: int,
    ) -> None:
        self.lm, self.pool, self.cfg, self.seed, self.dist = lm, pool, cfg, seed, dist
        self.max_length = max_length
        self.utts = sorted(pool.utt2spk)
        self.batches_per_epoch = math.ceil(len(self.utts) / cfg.batch_size)
        self._epoch: tuple[int, list[list[Example]]] | None = None

    def __call__(self, micro_step: int) -> dict[str, torch.Tensor]:
        epoch, index = divmod(micro_step, self.batches_per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            seed = self.seed * 100003 + epoch
            pairs = prompted_examples(self.lm, self.pool, self.utts, seed, self.max_length)
            rng = random.Random(self.seed * 100003 + epoch)
            order = length_batches([len(p) + len(t) for p, t in pairs], self.cfg.batch_size, rng)
            self._epoch = (epoch, [[pairs[i] for i in batch] for batch in order])
        batches = self._epoch[1]
        batch = batches[index % len(batches)][self.dist.rank :: self.dist.world_size]
        if not batch:
            raise ValueError(
                f"batch_size {self.cfg.batch_size} leaves process {self.dist.rank} without examples"
            )
        prompts, targets = zip(*batch, strict=True)
        return self.lm.training_batch(prompts, targets, self.cfg.loss_on_prompt_speech)


@torch.no_grad()
def mean_token_loss(model: nn.Module, batches: Sequence[Mapping[str, torch.Tensor]]) -> float:
    """Cross-entropy per target token over all batches (not the mean of batch means)."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in batches:
        n = int((batch["labels"][:, 1:] != -100).sum())
        loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
        total, count = total + float(loss) * n, count + n
    return total / max(count, 1)


def build_lm(
    conf: CodecLMConfig, pool: PromptPool, num_speech_tokens: int, token_list: Path | None = None
) -> CodecLM:
    """Load ``pretrained`` or build the configured Llama over the text units of ``token_list``
    (characters of the training text without one)."""
    if conf.pretrained:
        lm = CodecLM.from_pretrained(conf.pretrained)
        if lm.layout.num_speech_tokens < num_speech_tokens:
            raise ValueError(
                f"{conf.pretrained}: {lm.layout.num_speech_tokens} speech tokens, "
                f"the tokenizer has {num_speech_tokens}"
            )
        if token_list is not None:
            log.info("%s keeps its own text tokenizer; %s is not used", conf.pretrained, token_list)
        return lm
    text_units = units_for(token_list, pool.texts.values())
    units = sum(len(text_units.encode(pool.texts[u])) for u in pool.utt2spk)
    tokens = sum(len(pool.tokens[u]) for u in pool.utt2spk)
    emotions: list[str] = []
    if conf.emotion_instruction:
        if "emotion" not in pool.labels:
            raise ValueError(f"{pool.source}: emotion_instruction needs utt2emo in the data dir")
        emotions = sorted(set(pool.labels["emotion"].values()))
    return CodecLM.from_config(
        conf.model, text_units, num_speech_tokens,
        positions=conf.positions, chars_per_token=units / max(tokens, 1), emotions=emotions,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tokenizer", type=Path, required=True, help="speech tokenizer (vocab size)")
    p.add_argument("--train-dir", type=Path, required=True)
    p.add_argument("--train-tokens", type=Path, required=True)
    p.add_argument("--valid-dir", type=Path, required=True)
    p.add_argument("--valid-tokens", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument(
        "--token-list",
        type=Path,
        default=None,
        help="stage 2's text units (dump/token_list); without it, characters of the training text",
    )
    p.add_argument("--num-threads", type=int, default=1, help="torch CPU threads per process")
    args = p.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    dist = init_distributed()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    conf = load_config(args.config, CodecLMConfig)
    cfg = conf.train
    if dist.is_main:
        save_run_config(args.out_dir, conf)
    num_speech = load_speech_tokenizer(args.tokenizer).vocab_size
    train = PromptPool.load(args.train_dir, args.train_tokens, num_speech)
    valid = PromptPool.load(args.valid_dir, args.valid_tokens, num_speech)
    seed_everything(args.seed)
    lm = build_lm(conf, train, num_speech, args.token_list)
    lm.model.to(dist.device)
    max_length = cfg.max_length or lm.model.config.max_position_embeddings
    n_params = sum(p.numel() for p in lm.model.parameters())
    log.info(
        "codec LM: %.2fM parameters, vocab %d, %d train utterances",
        n_params / 1e6, lm.layout.vocab_size, len(train.utt2spk),
    )  # fmt: skip
    valid_batches = dev_batches(lm, valid, cfg, args.seed, max_length)
    data = SFTData(lm, train, cfg, args.seed, dist, max_length)
    dev_loss_at: dict[int, float] = {}

    def loss_fn(model: nn.Module, batch: tuple[int, dict[str, torch.Tensor]]):
        step, tensors = batch
        extra = {}
        if dist.is_main and ((step + 1) % cfg.valid_every == 0 or step + 1 == cfg.num_steps):
            if step not in dev_loss_at:  # once per step, reused by its accumulation micro-steps
                lm.model.eval()
                dev_loss_at[step] = mean_token_loss(lm.model, valid_batches)
                model.train()
            extra["dev_loss"] = dev_loss_at[step]
        out = model(**{k: v.to(dist.device) for k, v in tensors.items()})
        return out.loss, extra

    optimizer = torch.optim.AdamW(lm.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg))
    trainer_cfg = cfg.trainer_config(args.out_dir)
    trainer = Trainer(lm.model, optimizer, trainer_cfg, scheduler=scheduler, dist_info=dist)
    trainer.fit(loss_fn, lambda micro: (micro // cfg.grad_accum, data(micro)))
    if dist.is_main:
        lm.save_pretrained(args.out_dir / "model")
        log.info("wrote %s", args.out_dir / "model")
    cleanup()


if __name__ == "__main__":
    main()
