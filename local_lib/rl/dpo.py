"""DPO arithmetic for the codec LM: preference pairs from scored samples, and the DPO loss.

Kept free of models and data so each formula can be checked against numbers worked out by
hand (docs/methods.md#dpo); ``local_lib.rl.dpo_loop`` feeds it rewards and log-probabilities.

Scores are laid out group-major as the rollouts make them: the ``N`` samples of text 0 first,
then text 1... A batch of ``P`` pairs is laid out in halves: rows ``0..P-1`` are the chosen
completions, rows ``P..2P-1`` the rejected ones, pair ``i`` being rows ``i`` and ``P + i``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from local_lib.rl.method_spec import MethodSpec

METHOD = MethodSpec(
    family="codec_lm",
    curve_keys=(
        "loss", "dpo/accuracy", "dpo/margin", "dpo/chosen_logratio", "dpo/rejected_logratio",
        "reward/mean",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class DPOConfig:
    """The ``dpo:`` section (docs/methods.md#dpo)."""

    beta: float = 0.1  # scale of the implicit reward beta * log(pi / pi_ref)
    min_gap: float = 0.0  # a text gives a pair only when best - worst reward >= min_gap (and > 0)
    length_normalize: bool = False  # mean log-prob over completion tokens (SimPO) instead of sum
    sft_weight: float = 0.0  # RPO: + sft_weight * NLL per token of the chosen completions
    label_smoothing: float = 0.0  # conservative DPO: the preference is wrong with this chance
    pairs_per_step: int = 4  # a step draws rollout batches until it has at least this many
    max_draws: int = 4  # rollout batches a step may draw before it gives up
    refresh_every: int = 0  # 0: pairs from the frozen base; K: from the policy, rebuilt every K
    length_penalty: float = 0.0  # GRPO's length penalty on the reward before ranking (ours)
    length_tolerance: float = 0.5

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if self.min_gap < 0 or self.sft_weight < 0:
            raise ValueError("min_gap and sft_weight must be >= 0")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {self.label_smoothing}")
        if self.pairs_per_step < 1 or self.max_draws < 1 or self.refresh_every < 0:
            raise ValueError("need pairs_per_step >= 1, max_draws >= 1 and refresh_every >= 0")
        if self.length_penalty < 0 or self.length_tolerance < 0:
            raise ValueError("length_penalty and length_tolerance must be >= 0")


@dataclass(frozen=True)
class Pairs:
    """Preference pairs of one scored batch, as row indices into its ``B = texts * N`` samples."""

    chosen: list[int]
    rejected: list[int]
    skipped: list[int]  # texts (groups) whose samples gave no pair


def preference_pairs(rewards: torch.Tensor, group_size: int, min_gap: float) -> Pairs:
    """One pair per text: its best sample against its worst.

    Ties are broken by position, so the pick is reproducible: the first of equal best samples
    is chosen, the last of equal worst ones rejected. A text gives no pair when its best and
    worst differ by less than ``min_gap``, or not at all (a tie says nothing about preference,
    even with ``min_gap`` 0); such texts are returned in ``skipped``, never trained on.
    """
    if rewards.dim() != 1 or group_size < 2 or rewards.numel() % group_size:
        raise ValueError(
            f"rewards must be 1-D with a multiple of group_size >= 2 entries, "
            f"got shape {tuple(rewards.shape)} and group_size {group_size}"
        )
    chosen, rejected, skipped = [], [], []
    for text, group in enumerate(rewards.view(-1, group_size).tolist()):
        best = max(range(group_size), key=lambda i: (group[i], -i))
        worst = min(range(group_size), key=lambda i: (group[i], -i))
        gap = group[best] - group[worst]
        if gap > 0 and gap >= min_gap:
            chosen.append(text * group_size + best)
            rejected.append(text * group_size + worst)
        else:
            skipped.append(text)
    return Pairs(chosen, rejected, skipped)


def sequence_logprobs(logp: torch.Tensor, mask: torch.Tensor, mean: bool) -> torch.Tensor:
    """``[B, T] -> [B]``: the sum of each completion's token log-probs, or their mean."""
    mask = mask.to(logp.dtype)
    total = (logp * mask).sum(dim=1)
    return total / mask.sum(dim=1).clamp(min=1.0) if mean else total


def dpo_loss(
    logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, cfg: DPOConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """The mean over pairs of ``-log sigmoid(beta * h)``, ``h = (log pi(y_w) - log ref(y_w)) -
    (log pi(y_l) - log ref(y_l))``, plus the statistics a loop logs.

    ``logp``, ``ref_logp`` and ``mask`` are ``[2P, T]`` token log-probs of the policy and the
    reference in the halves layout (module docstring). With ``label_smoothing`` e the pair loss
    is ``-(1 - e) log sigmoid(beta h) - e log sigmoid(-beta h)``; with ``sft_weight`` w the
    loss adds ``w`` times the policy's NLL per token over all chosen tokens of the batch (RPO).
    """
    if logp.shape != ref_logp.shape or logp.shape != mask.shape or logp.shape[0] % 2:
        raise ValueError(
            f"need [2P, T] log-probs and mask of one shape, got {tuple(logp.shape)}, "
            f"{tuple(ref_logp.shape)}, {tuple(mask.shape)}"
        )
    pairs = logp.shape[0] // 2
    ratio = sequence_logprobs(logp, mask, cfg.length_normalize) - sequence_logprobs(
        ref_logp, mask, cfg.length_normalize
    )
    chosen_ratio, rejected_ratio = ratio[:pairs], ratio[pairs:]
    margin = cfg.beta * (chosen_ratio - rejected_ratio)
    eps = cfg.label_smoothing
    loss = (-(1.0 - eps) * F.logsigmoid(margin) - eps * F.logsigmoid(-margin)).mean()
    chosen_mask = mask[:pairs].to(logp.dtype)
    nll = -(logp[:pairs] * chosen_mask).sum() / chosen_mask.sum().clamp(min=1.0)
    if cfg.sft_weight > 0:
        loss = loss + cfg.sft_weight * nll
    stats = {
        "dpo/accuracy": float((margin > 0).float().mean()),
        "dpo/margin": float(margin.detach().mean()),
        "dpo/chosen_logratio": float(chosen_ratio.detach().mean()),
        "dpo/rejected_logratio": float(rejected_ratio.detach().mean()),
        "dpo/chosen_nll": float(nll.detach()),
    }
    return loss, stats
