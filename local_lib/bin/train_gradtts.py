"""Stage 4 (Grad-TTS family): train the base Grad-TTS on log-mels with speaker and emotion ids.

    utils/launch.sh --nproc N -- local_lib.bin.train_gradtts --config conf/gradtts_mini.yaml \\
        --seed 0 --train-dir data/train --valid-dir data/dev \\
        --feats-dir dump/train --valid-feats-dir dump/dev --out-dir exp/tts_base

Prior + duration + diffusion losses (``GradTTS.compute_losses``) through the shared Trainer:
checkpoints/ (a killed run resumes), metrics.jsonl, tensorboard/, train.log. Dev losses on a
fixed subset every ``train.valid_every`` steps are logged as ``dev/<loss>``. With
``train.decoder_steps`` the joint steps are followed by a decoder phase: the encoder and duration
predictor stay as the joint steps left them (learning rate 0, no dropout) while the decoder
trains on their μ with its own schedule (``decoder_lr_factor``). The result is
``<out-dir>/model.pt`` (``load_gradtts``), written by rank 0 once the step budget is reached.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from local_lib.config import load_config, save_run_config
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.config_yaml import setup_logging
from local_lib.models.gradtts import GradTTS, GradTTSBundle
from local_lib.models.gradtts.data import TTSItems, load_tts_items, pad_mels
from local_lib.models.gradtts.recipe_config import GradTTSRecipeConfig, GradTTSTrainSection
from local_lib.train.checkpoint import unwrap
from local_lib.train.distributed import cleanup, init_distributed
from local_lib.train.trainer import Trainer, seed_everything

log = logging.getLogger("train_gradtts")
Batch = dict[str, torch.Tensor]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", type=Path, required=True, help="conf/gradtts*.yaml")
    p.add_argument("--train-dir", type=Path, required=True)
    p.add_argument("--valid-dir", type=Path, required=True)
    p.add_argument("--feats-dir", type=Path, required=True, help="holds feats.scp of train")
    p.add_argument("--valid-feats-dir", type=Path, required=True, help="feats.scp of valid")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-threads", type=int, default=1, help="torch CPU threads per process")
    return p.parse_args(argv)


def usable(items: TTSItems, tokenizer: CharTokenizer, where: Path) -> list[int]:
    """Indices MAS can align (at least one frame per character); the others are logged."""
    assert items.mels is not None
    keep, dropped = [], []
    for i, (text, mel) in enumerate(zip(items.texts, items.mels, strict=True)):
        n_tokens = len(tokenizer.encode(text))
        (keep if 0 < n_tokens <= mel.shape[0] else dropped).append(i)
    if dropped:
        log.warning(
            "%s: %d utterance(s) with fewer frames than characters skipped, e.g. %s",
            where, len(dropped), items.utts[dropped[0]],
        )  # fmt: skip
    if not keep:
        raise ValueError(f"{where}: no utterance has at least one frame per character")
    return keep


def make_batch(
    bundle: GradTTSBundle, items: TTSItems, indices: list[int]
) -> Batch:
    assert items.mels is not None
    text, text_lengths = bundle.encode_texts([items.texts[i] for i in indices])
    mel, mel_lengths = pad_mels([items.mels[i] for i in indices])
    return {
        "text": text,
        "text_lengths": text_lengths,
        "mel": mel,
        "mel_lengths": mel_lengths,
        "speaker": torch.tensor([bundle.speaker_id(items.speakers[i]) for i in indices]),
        "emotion": torch.tensor([bundle.emotion_id(items.emotions[i]) for i in indices]),
    }


class BatchSampler:
    """Micro-step ``k`` -> a batch of utterances of similar length, a pure function of
    (seed, rank, k), so a resumed run sees exactly the batches the interrupted one would have."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, rank: int) -> None:
        self.order = np.argsort(np.asarray(lengths), kind="stable")
        self.batch_size = min(batch_size, len(lengths))
        self.seed, self.rank = seed, rank

    def generator(self, k: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + k * 1009 + self.rank)

    def __call__(self, k: int) -> list[int]:
        g = self.generator(k)
        start = int(torch.randint(len(self.order) - self.batch_size + 1, (1,), generator=g))
        return [int(i) for i in self.order[start : start + self.batch_size]]


@torch.no_grad()
def dev_losses(model: GradTTS, batches: list[Batch], seed: int) -> dict[str, float]:
    """Mean losses on the fixed dev batches with fixed noise, so successive values compare."""
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    g = torch.Generator().manual_seed(seed)
    for batch in batches:
        for key, value in model.compute_losses(**batch, generator=g).items():
            totals[f"dev/{key}"] = totals.get(f"dev/{key}", 0.0) + float(value) / len(batches)
    model.train(was_training)
    return totals


def build(items: TTSItems, cfg_model, seed: int) -> GradTTSBundle:
    """A fresh model whose vocabulary, speakers and emotions are those of the training data."""
    tokenizer = CharTokenizer.build(items.texts)
    speakers, emotions = sorted(set(items.speakers)), sorted(set(items.emotions))
    seed_everything(seed)
    model = GradTTS(cfg_model, tokenizer.vocab_size, len(speakers), len(emotions))
    return GradTTSBundle(model, tokenizer, speakers, emotions)


def lr_factor(step: int, cfg: GradTTSTrainSection) -> float:
    """Multiplier of ``cfg.lr`` for joint optimizer step ``step`` (0-based): linear warm-up, then
    constant or a cosine from 1 down to ``min_lr_ratio`` at the last joint step."""
    warmup = max(1, cfg.warmup_steps)
    if step + 1 < warmup or cfg.lr_schedule == "constant":
        return min(1.0, (step + 1) / warmup)
    return cosine(min(1.0, (step + 1 - warmup) / max(1, cfg.num_steps - warmup)), cfg.min_lr_ratio)


def cosine(progress: float, floor: float) -> float:
    """From 1 at progress 0 down to ``floor`` at progress 1."""
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def in_decoder_phase(step: int, cfg: GradTTSTrainSection) -> bool:
    """Whether 0-based optimizer step ``step`` trains the decoder alone."""
    return cfg.decoder_steps > 0 and step >= cfg.num_steps


def decoder_lr_factor(step: int, cfg: GradTTSTrainSection) -> float:
    """Multiplier of ``cfg.lr`` for the decoder at step ``step``: the joint schedule, then in the
    decoder phase a cosine from ``decoder_lr`` to ``min_lr_ratio·decoder_lr`` at its last step."""
    if not in_decoder_phase(step, cfg):
        return lr_factor(step, cfg)
    progress = min(1.0, (step + 1 - cfg.num_steps) / max(1, cfg.decoder_steps))
    return cfg.decoder_lr / cfg.lr * cosine(progress, cfg.min_lr_ratio)


def encoder_lr_factor(step: int, cfg: GradTTSTrainSection) -> float:
    """The joint schedule, then 0: the decoder phase leaves encoder and duration predictor be."""
    return 0.0 if in_decoder_phase(step, cfg) else lr_factor(step, cfg)


def param_groups(model: GradTTS) -> list[dict]:
    """The decoder first (the group whose rate the Trainer logs, never 0), then the encoder (text
    encoder and duration predictor), so each can follow its own schedule; every parameter is in
    exactly one."""
    encoder = list(model.encoder.parameters())
    ids = {id(p) for p in encoder}
    return [{"params": [p for p in model.parameters() if id(p) not in ids]}, {"params": encoder}]


def with_zero_gradients(loss: torch.Tensor, frozen: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """``loss`` plus 0·Σθ over the frozen parameters: their gradients become zeros instead of
    None, which DDP requires of every parameter it was built with (and at learning rate 0 Adam
    leaves them where they are)."""
    return loss + 0.0 * sum(p.sum() for p in frozen)


def lr_schedule(optimizer: torch.optim.Optimizer, cfg: GradTTSTrainSection):
    """Per group of ``param_groups``: the decoder's and the encoder's factors."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        [lambda s: decoder_lr_factor(s, cfg), lambda s: encoder_lr_factor(s, cfg)],
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.num_threads)
    dist_info = init_distributed()
    if dist_info.is_main:
        setup_logging(args.out_dir / "log" / "train_gradtts.log")
    else:
        logging.basicConfig(level=logging.WARNING)
    conf = load_config(args.config, GradTTSRecipeConfig)
    if dist_info.is_main:
        save_run_config(args.out_dir, conf)
    tcfg = conf.train
    train = load_tts_items(args.train_dir, args.feats_dir / "feats.scp")
    valid = load_tts_items(args.valid_dir, args.valid_feats_dir / "feats.scp")
    bundle = build(train, conf.model, args.seed)
    keep = usable(train, bundle.tokenizer, args.train_dir)
    valid_keep = usable(valid, bundle.tokenizer, args.valid_dir)
    # An evenly spaced dev subset covers every speaker and emotion of a sorted dev set.
    picks = np.linspace(0, len(valid_keep) - 1, min(tcfg.valid_utts, len(valid_keep)))
    valid_idx = sorted({valid_keep[int(round(p))] for p in picks})
    valid_batches = [
        make_batch(bundle, valid, valid_idx[i : i + tcfg.batch_size])
        for i in range(0, len(valid_idx), tcfg.batch_size)
    ]
    assert train.mels is not None
    sampler = BatchSampler(
        [train.mels[i].shape[0] for i in keep], tcfg.batch_size, args.seed, dist_info.rank
    )
    model = bundle.model.to(dist_info.device)
    optimizer = torch.optim.Adam(param_groups(model), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    trainer = Trainer(
        model,
        optimizer,
        tcfg.trainer_config(args.out_dir),
        scheduler=lr_schedule(optimizer, tcfg),
        dist_info=dist_info,
    )

    def next_batch(k: int) -> tuple[Batch, torch.Generator, bool, bool]:
        step = k // tcfg.grad_accum + 1
        last_micro = k % tcfg.grad_accum == tcfg.grad_accum - 1
        validate = last_micro and (step % tcfg.valid_every == 0 or step == tcfg.total_steps)
        indices = [keep[i] for i in sampler(k)]
        decoder_phase = in_decoder_phase(step - 1, tcfg)
        return make_batch(bundle, train, indices), sampler.generator(k), validate, decoder_phase

    def loss_fn(net: torch.nn.Module, item: tuple[Batch, torch.Generator, bool, bool]):
        batch, g, validate, decoder_phase = item
        if decoder_phase:  # after the Trainer's train(): μ without dropout, as at synthesis
            unwrap(net).encoder.eval()
        batch = {k: v.to(dist_info.device) for k, v in batch.items()}
        losses = net(**batch, generator=g, train_encoder=not decoder_phase)
        loss = losses["loss"]
        if decoder_phase:
            loss = with_zero_gradients(loss, unwrap(net).encoder.parameters())
        stats = {k: float(v.detach()) for k, v in losses.items() if k != "loss"}
        if validate and dist_info.is_main:
            # Summed into the step's stats by the trainer, which divides by grad_accum.
            dev = dev_losses(unwrap(net), valid_batches, args.seed)
            stats.update({k: v * tcfg.grad_accum for k, v in dev.items()})
        return loss, stats

    log.info(
        "Grad-TTS: %d train utterances (%d dev), vocabulary %d, speakers %s, emotions %s, "
        "%d encoder + %d decoder parameters, %d joint steps and %d of the decoder alone, "
        "batch %d, on %d process(es)",
        len(keep), len(valid_idx), bundle.tokenizer.vocab_size, bundle.speakers,
        bundle.emotions, sum(p.numel() for p in model.encoder.parameters()),
        sum(p.numel() for p in model.decoder.parameters()), tcfg.num_steps,
        tcfg.decoder_steps, tcfg.batch_size,
        dist_info.world_size,
    )  # fmt: skip
    trainer.fit(loss_fn, next_batch)
    if dist_info.is_main:
        bundle.save(args.out_dir / "model.pt")
        log.info("wrote %s", args.out_dir / "model.pt")
    cleanup()


if __name__ == "__main__":
    main()
