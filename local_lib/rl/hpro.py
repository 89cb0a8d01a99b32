"""HPRO arithmetic: the losses by level, the progressive schedule and the total loss.

Kept free of models so each formula can be checked by hand; the loop feeds it what the frozen
reward codec (``local_lib.models.reward_codec``) reads from the policy's soft tokens and from the
reference tokens at the same positions (docs/methods.md#hpro). Lower is better everywhere:

    frame_content  mean over frames of ‖c_gen − c_ref‖² / Dc      content codes
    frame_style    mean over frames of ‖s_gen − s_ref‖² / Ds      style codes
    word           Σ_d (1 − CCC_d) over the words of an utterance, mean over utterances
    sentence       cross-entropy of the emotion head against the target emotion
    text           CTC −log P(text) per unit of the content decoder
    L = Σ_{active terms} w_k · term_k + β · KL(π_θ ‖ π_ref)

Each term reads one stream: the content terms (frame_content, text) the content codes, the
emotion terms (frame_style, word, sentence) the style codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch

from local_lib.rl.diffro import masked_mean
from local_lib.rl.method_spec import MethodSpec

METHOD = MethodSpec(
    family="codec_lm",
    curve_keys=(
        "loss/total", "loss/frame_content", "loss/frame_style", "loss/word", "loss/sentence",
        "loss/text", "kl", "emotion_acc", "codec_wer", "terms_on",
    ),
    reward_asr_view=False,  # the reward codec reads speech tokens, not audio
)  # fmt: skip

TERMS: tuple[str, ...] = ("frame_content", "frame_style", "word", "sentence", "text")
Schedule = Literal["progressive", "summed", "sentence_only"]
CCC_EPS = 1e-8


@dataclass(frozen=True)
class HPROWeights:
    """Weight of each term when it is on."""

    frame_content: float = 1.0
    frame_style: float = 1.0
    word: float = 1.0
    sentence: float = 1.0
    text: float = 1.0

    def __post_init__(self) -> None:
        for name in TERMS:
            if getattr(self, name) < 0:
                raise ValueError(f"weight of {name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class HPROLossConfig:
    """The ``loss:`` section of conf/hpro*.yaml.

    ``schedule``: ``progressive`` (frame terms and text first; the word term joins at step
    ``frame_steps``, the sentence term at ``frame_steps + word_steps``; earlier terms stay on),
    ``summed`` (every term from the first step: the single-scalar reward the method argues
    against) or ``sentence_only`` (the sentence emotion term alone).
    """

    beta: float = 0.1  # KL weight; 0 builds no reference model
    tau: float = 1.0  # Gumbel-softmax temperature
    straight_through: bool = False
    schedule: Schedule = "progressive"
    frame_steps: int = 100  # steps of phase 1 (frame terms)
    word_steps: int = 100  # steps of phase 2 (+ word term); phase 3 (+ sentence) runs on
    weights: HPROWeights = field(default_factory=HPROWeights)

    def __post_init__(self) -> None:
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")
        if self.schedule not in ("progressive", "summed", "sentence_only"):
            raise ValueError(f"schedule: progressive, summed or sentence_only, not {self.schedule}")
        if self.frame_steps < 0 or self.word_steps < 0:
            raise ValueError("frame_steps and word_steps must be >= 0")


def active_terms(cfg: HPROLossConfig, step: int) -> tuple[str, ...]:
    """The terms on at (0-based) update ``step``, in ``TERMS`` order."""
    if cfg.schedule == "summed":
        return TERMS
    if cfg.schedule == "sentence_only":
        return ("sentence",)
    on = {"frame_content", "frame_style", "text"}
    if step >= cfg.frame_steps:
        on.add("word")
    if step >= cfg.frame_steps + cfg.word_steps:
        on.add("sentence")
    return tuple(t for t in TERMS if t in on)


def frame_mse(gen: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of ``[B, T, D]`` codes over the dimensions and the frames of
    ``mask`` ``[B, T]``."""
    return masked_mean(((gen - ref) ** 2).mean(dim=-1), mask)


def ccc(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Concordance correlation of ``x`` and ``y`` ``[..., N]`` along the last axis over the
    entries of ``mask``: ``2 cov / (var_x + var_y + (mean_x − mean_y)²)`` with population
    moments; ``CCC_EPS`` in the denominator makes two equal constants 0, not nan."""
    keep = mask.to(x.dtype)
    count = keep.sum(dim=-1).clamp(min=1)
    mx, my = (x * keep).sum(-1) / count, (y * keep).sum(-1) / count
    dx, dy = (x - mx[..., None]) * keep, (y - my[..., None]) * keep
    cov = (dx * dy).sum(-1) / count
    var_x, var_y = (dx**2).sum(-1) / count, (dy**2).sum(-1) / count
    return 2 * cov / (var_x + var_y + (mx - my) ** 2 + CCC_EPS)


def word_loss(gen: torch.Tensor, ref: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
    """``Σ_d (1 − CCC_d)`` over the words of each utterance (``[B, W, D]`` dimensions, ``[B, W]``
    mask), averaged over the utterances with at least two words (one word has no contour)."""
    per_dim = 1 - ccc(gen.transpose(1, 2), ref.transpose(1, 2), word_mask[:, None, :])
    per_utt = per_dim.sum(dim=-1)
    return masked_mean(per_utt, word_mask.sum(dim=-1) >= 2)


def sentence_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``[B, E]`` emotion logits against ``[B]`` target classes."""
    return torch.nn.functional.cross_entropy(logits, target)


def hpro_loss(
    terms: Mapping[str, torch.Tensor],
    active: tuple[str, ...],
    weights: HPROWeights,
    kl: torch.Tensor | None,
    mask: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``Σ_active w_k · term_k + β · KL`` (the ``[B, T]`` token KL averaged over ``mask``; None:
    no reference model, β must be 0). Every given term is logged, on or off."""
    missing = [name for name in active if name not in terms]
    if missing:
        raise KeyError(f"active HPRO term(s) {missing} not computed")
    zero = torch.zeros((), device=mask.device)
    loss = sum((getattr(weights, name) * terms[name] for name in active), zero)
    stats = {f"loss/{name}": float(value.detach()) for name, value in terms.items()}
    stats["terms_on"] = float(len(active))
    if kl is None:
        if beta:
            raise ValueError("beta > 0 needs the reference model's KL")
    else:
        mean_kl = masked_mean(kl, mask)
        stats["kl"] = float(mean_kl.detach())
        loss = loss + beta * mean_kl
    stats["loss/total"] = float(loss.detach())
    return loss, stats
