"""The small training loop shared by the reward ASR and the evaluators.

Length-bucketed batches, AdamW with linear warm-up then cosine decay, gradient clipping, a
checkpoint after every epoch written atomically (weights + optimizer + scheduler + RNG), and
resume from that checkpoint when the output already exists.
"""

import argparse
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from local_lib.atomic_io import torch_save_atomic

log = logging.getLogger(__name__)
# Checkpoint entries that say which text units a model's outputs are (local_lib.models.asr_units)
UNIT_KEYS = ("tokens", "sentencepiece")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup_fraction: float = 0.05
    grad_clip: float = 5.0
    seed: int = 0


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device``: ``auto`` trains on the GPU when torch sees one (full-size configs on a GPU
    node), else on the CPU."""
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")


def resolve_device(name: str) -> torch.device:
    """The device ``--device`` names; ``auto`` is ``cuda`` when available, else ``cpu``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: torch sees no CUDA device here")
    return device


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped by similar length (little padding), batch order shuffled."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def _schedule(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    warmup = max(1, int(cfg.warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def fit(
    model: torch.nn.Module,
    batch_loss: Callable[[list[int]], torch.Tensor],
    lengths: Sequence[int],
    cfg: TrainConfig,
    ckpt_path: Path,
    checkpoint_content: Callable[[], dict],
    validate: Callable[[], dict[str, float]] | None = None,
) -> list[dict]:
    """Train ``model`` on the utterances indexed by ``lengths``; returns per-epoch metrics.

    ``batch_loss(indices)`` gives the loss of one batch; ``checkpoint_content()`` the
    model-specific part of the checkpoint (weights, config, units or labels).
    """
    torch.manual_seed(cfg.seed)
    n_batches = math.ceil(len(lengths) / cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg, cfg.epochs * n_batches))
    start, history = 0, []
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        _check_same_units(ckpt_path, state, checkpoint_content())
        train_state = state.get("train_state", {})
        model.load_state_dict(state["model"])
        opt.load_state_dict(train_state["optimizer"])
        sched.load_state_dict(train_state["scheduler"])
        start, history = train_state["epoch"], train_state["history"]
        torch.set_rng_state(train_state["torch_rng"])
        log.info("resuming %s after epoch %d", ckpt_path, start)
    for epoch in range(start, cfg.epochs):
        model.train()
        rng = random.Random(cfg.seed * 100003 + epoch)
        total, count = 0.0, 0
        for step, batch in enumerate(length_batches(lengths, cfg.batch_size, rng)):
            loss = batch_loss(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at epoch {epoch + 1}, batch {step}")
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        model.eval()
        # Process CPU time, not wall time: on a shared machine it is what a config costs.
        metrics = {"epoch": epoch + 1, "train_loss": total / count, "cpu_s": time.process_time()}
        if validate is not None:
            with torch.no_grad():
                metrics.update(validate())
        history.append(metrics)
        log.info(
            "epoch %d/%d %s",
            epoch + 1,
            cfg.epochs,
            " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k != "epoch"),
        )
        train_state = {
            "epoch": epoch + 1,
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "history": history,
            "torch_rng": torch.get_rng_state(),
            "config": asdict(cfg),
        }
        torch_save_atomic({**checkpoint_content(), "train_state": train_state}, ckpt_path)
    return history


def _check_same_units(ckpt_path: Path, saved: dict, current: dict) -> None:
    """A model trained on other text units (stage 2 re-made with another ``--nbpe``) is never
    resumed: its output layer means other units."""
    if any(saved.get(key) != current.get(key) for key in UNIT_KEYS):
        raise ValueError(
            f"{ckpt_path} was trained on other text units ({_units_of(saved)}, now "
            f"{_units_of(current)}); it cannot be resumed: remove it to train anew"
        )


def _units_of(state: dict) -> str:
    kind = "sentencepiece" if "sentencepiece" in state else "character"
    return f"{len(state.get('tokens', []))} {kind} units"
