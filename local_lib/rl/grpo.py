"""GRPO arithmetic: group advantages, the clipped per-token objective and its aggregation.

Kept free of models and data so each formula can be checked against numbers worked out by
hand; the training loop only feeds it log-probabilities and rewards.

Rewards are laid out group-major: the ``G`` completions of prompt 0 first, then prompt 1...
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import torch

from local_lib.rl.method_spec import MethodSpec

LOG = logging.getLogger(__name__)

LossType = Literal["grpo", "dapo", "dr_grpo"]
RewardScaling = Literal["group", "batch", "none"]
ADV_EPS = 1e-4
METHOD = MethodSpec(
    family="codec_lm",
    curve_keys=("reward/mean", "reward/asr_wer", "reward/asr_nll", "kl", "entropy"),
)


@dataclass(frozen=True)
class GRPOConfig:
    """Loss settings (docs/methods.md#grpo); ``beta == 0`` means no reference model at all."""

    epsilon: float = 0.2
    beta: float = 0.0
    loss_type: LossType = "dapo"
    scale_rewards: RewardScaling = "group"
    truncation_penalty: float = 0.0
    length_penalty: float = 0.0  # per unit of |ln(length / expected)| beyond the tolerance
    length_tolerance: float = 0.5  # free band: expected / 1.5 .. expected * 1.5 at 0.5
    max_completion_length: int | None = None

    def __post_init__(self) -> None:
        if self.loss_type not in ("grpo", "dapo", "dr_grpo"):
            raise ValueError(f"loss_type must be grpo, dapo or dr_grpo, got {self.loss_type!r}")
        if self.scale_rewards not in ("group", "batch", "none"):
            raise ValueError(f"scale_rewards must be group, batch or none: {self.scale_rewards!r}")
        if self.length_penalty < 0.0 or self.length_tolerance < 0.0:
            raise ValueError("length_penalty and length_tolerance must be >= 0")
        if not 0.0 < self.epsilon < 1.0 or self.beta < 0.0:
            raise ValueError(f"need 0 < epsilon < 1 and beta >= 0, got {self.epsilon}, {self.beta}")


@dataclass(frozen=True)
class Advantages:
    values: torch.Tensor  # [B]
    zero_std_groups: int  # groups whose rewards are all equal: no learning signal


class FlatRewardError(RuntimeError):
    """Rollout after rollout gave every sample of every group the same reward."""


@dataclass
class FlatRewardGuard:
    """Stops a run whose reward carries no signal. Equal rewards within every group give zero
    advantages, so a reward that returns a constant (a broken reward model returning zeros)
    would otherwise train nothing and exit 0. Each flat rollout is logged as a warning; after
    ``patience`` in a row, FlatRewardError."""

    patience: int
    flat_in_a_row: int = 0

    def update(self, index: int, zero_std_groups: int, groups: int, reward_mean: float) -> None:
        """Rollout ``index`` had ``zero_std_groups`` of ``groups`` groups with equal rewards."""
        if zero_std_groups < groups:
            self.flat_in_a_row = 0
            return
        self.flat_in_a_row += 1
        message = (
            f"rollout {index}: every sample of all {groups} group(s) got the same reward "
            f"(mean {reward_mean:.4g}), so this update learns nothing from the reward "
            f"({self.flat_in_a_row} such rollout(s) in a row)"
        )
        if self.flat_in_a_row >= self.patience:
            raise FlatRewardError(
                f"{message}: the reward carries no signal; check that the reward models "
                "score these samples (a reward returning a constant?), or raise "
                "max_flat_rollouts"
            )
        LOG.warning("%s", message)


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale: RewardScaling = "group"
) -> Advantages:
    """``A_i = (r_i - mean_group) / (std + 1e-4)``; std is the unbiased one, as in TRL.

    ``scale="batch"`` divides by the std of the whole batch instead of the group's, and
    ``"none"`` only centres (Dr. GRPO).
    """
    if rewards.dim() != 1 or rewards.numel() % group_size or group_size < 2:
        raise ValueError(
            f"rewards must be 1-D with a multiple of group_size >= 2 entries, "
            f"got shape {tuple(rewards.shape)} and group_size {group_size}"
        )
    grouped = rewards.view(-1, group_size)
    group_std = grouped.std(dim=1, keepdim=True)
    centred = (grouped - grouped.mean(dim=1, keepdim=True)).reshape(-1)
    zero_std = int(torch.isclose(group_std, torch.zeros_like(group_std)).sum())
    if scale == "group":
        centred = centred / (group_std.expand_as(grouped).reshape(-1) + ADV_EPS)
    elif scale == "batch":
        centred = centred / (rewards.std() + ADV_EPS)
    elif scale != "none":
        raise ValueError(f"scale must be group, batch or none, got {scale!r}")
    return Advantages(centred, zero_std)


def apply_truncation_penalty(
    rewards: torch.Tensor, has_eos: torch.Tensor, penalty: float
) -> torch.Tensor:
    """Subtract ``penalty`` from completions that hit the length limit without EOS."""
    return rewards - penalty * (~has_eos.bool()).to(rewards.dtype)


def apply_length_penalty(
    rewards: torch.Tensor,
    lengths: torch.Tensor,
    expected: torch.Tensor,
    penalty: float,
    tolerance: float,
) -> torch.Tensor:
    """Subtract ``penalty * max(0, |ln(length / expected)| - ln(1 + tolerance))``.

    A reward computed by an ASR can be gamed by speaking less (a short or silent completion
    has few insertions to lose and a cheap NLL); tying the length to what the text needs at
    the prompt speaker's rate closes that door without touching in-range completions."""
    ratio = lengths.to(rewards.dtype).clamp(min=1.0) / expected.to(rewards.dtype)
    excess = (ratio.log().abs() - math.log1p(tolerance)).clamp(min=0.0)
    return rewards - penalty * excess


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token estimator of KL(pi || ref): ``exp(ref-logp) - (ref-logp) - 1`` (always >= 0)."""
    diff = ref_logp - logp
    return torch.exp(diff) - diff - 1.0


def per_token_loss(
    logp: torch.Tensor,
    advantages: torch.Tensor,
    epsilon: float,
    old_logp: torch.Tensor | None = None,
    ref_logp: torch.Tensor | None = None,
    beta: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``-min(rho A, clip(rho, 1-eps, 1+eps) A) + beta k3`` per token, and the clip-active mask.

    ``advantages`` is ``[B]`` (one per sequence, as GRPO has it) or ``[B, T]`` (one per token,
    e.g. a word's advantage on the speech tokens it covers, as W3AR has it).
    ``old_logp=None`` is the single-update on-policy case: rho is 1 in value but keeps the
    gradient of ``logp``. ``ref_logp`` is only read when ``beta > 0``.
    """
    old = logp.detach() if old_logp is None else old_logp
    ratio = torch.exp(logp - old)
    adv = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
    clipped_ratio = torch.clamp(ratio, 1.0 - epsilon, 1.0 + epsilon)
    loss = -torch.min(ratio * adv, clipped_ratio * adv)
    clip_active = ((ratio < 1.0 - epsilon) & (adv < 0)) | ((ratio > 1.0 + epsilon) & (adv > 0))
    if beta > 0.0:
        if ref_logp is None:
            raise ValueError("beta > 0 needs reference log-probabilities")
        loss = loss + beta * k3_kl(logp, ref_logp)
    return loss, clip_active


def aggregate(
    token_loss: torch.Tensor,
    mask: torch.Tensor,
    loss_type: LossType,
    max_completion_length: int | None = None,
) -> torch.Tensor:
    """Reduce ``[B, T]`` token losses over completion tokens the way TRL names them.

    grpo: mean over each sequence's tokens, then over sequences; dapo: sum over all tokens /
    number of tokens; dr_grpo: sum / (B * max_completion_length), the configured limit
    (defaults to the padded width ``T``), so the scale is independent of lengths.
    """
    mask = mask.to(token_loss.dtype)
    masked = token_loss * mask
    if loss_type == "grpo":
        return (masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).mean()
    if loss_type == "dapo":
        return masked.sum() / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        length = token_loss.shape[1] if max_completion_length is None else max_completion_length
        return masked.sum() / (token_loss.shape[0] * length)
    raise ValueError(f"loss_type must be grpo, dapo or dr_grpo, got {loss_type!r}")


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each position's next-token distribution, ``[B, T, V] -> [B, T]``."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    return -(logprobs.exp() * logprobs).sum(dim=-1)


def grpo_loss(
    logp: torch.Tensor,
    mask: torch.Tensor,
    advantages: torch.Tensor,
    cfg: GRPOConfig,
    old_logp: torch.Tensor | None = None,
    ref_logp: torch.Tensor | None = None,
    logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The scalar loss plus the statistics an RL loop logs (clip fraction, KL, entropy)."""
    if logp.shape != mask.shape or advantages.shape not in (logp.shape[:1], logp.shape):
        raise ValueError(
            f"shape mismatch: logp {tuple(logp.shape)}, mask {tuple(mask.shape)}, "
            f"advantages {tuple(advantages.shape)}"
        )
    token_loss, clip_active = per_token_loss(
        logp, advantages, cfg.epsilon, old_logp, ref_logp, cfg.beta
    )
    loss = aggregate(token_loss, mask, cfg.loss_type, cfg.max_completion_length)
    stats = {"clip_fraction": float(masked_mean(clip_active.float(), mask))}
    if cfg.beta > 0.0:
        stats["kl"] = float(masked_mean(k3_kl(logp.detach(), ref_logp), mask))
    if logits is not None:
        stats["entropy"] = float(masked_mean(token_entropy(logits.detach()), mask))
    return loss, stats
