"""DiffRO arithmetic: the multi-task reward, the exact token-level KL and the loss.

Kept free of models so each formula can be checked by hand; ``local_lib.rl.diffro_loop`` feeds
it the soft tokens' rewards and the policy's and reference's log-probabilities
(docs/methods.md#diffro).

    R   = log P(text | ỹ) / units + Σ_k w_k log P(label_k | ỹ)        per completion
    KL  = Σ_v p_θ(v) (log p_θ(v) − log p_ref(v))                       per completion token
    L   = −mean_b R_b + β · (masked mean of KL over completion tokens)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from local_lib.rl.method_spec import MethodSpec

METHOD = MethodSpec(
    family="codec_lm",
    curve_keys=("reward/total", "reward/text", "kl", "t2t_wer", "entropy"),
    reward_asr_view=False,  # Token2Text reads speech tokens, not audio
)


@dataclass(frozen=True)
class DiffROLossConfig:
    """The ``loss:`` section: soft tokens and the KL weight."""

    beta: float = 0.1  # KL weight; 0 builds no reference model
    tau: float = 1.0  # Gumbel-softmax temperature
    straight_through: bool = False  # forward the one-hot of the Gumbel argmax, soft gradient
    # Gumbel noise drawn given that its argmax is the rollout's token (false: fresh noise, so a
    # position's hard choice is a new draw given the rollout's prefix)
    given_rollout: bool = False

    def __post_init__(self) -> None:
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")


@dataclass(frozen=True)
class DiffRORewardConfig:
    """The ``reward:`` section: the MTR weight of each Token2Text label head ({}: text only)."""

    mtr: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, weight in self.mtr.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ValueError(f"mtr weight of {name!r} must be a number, got {weight!r}")
        object.__setattr__(self, "mtr", {name: float(w) for name, w in self.mtr.items()})


def combine_rewards(
    text: torch.Tensor, labels: Mapping[str, torch.Tensor], weights: Mapping[str, float]
) -> torch.Tensor:
    """``[B]`` total reward: the text term plus each label term times its weight."""
    missing = sorted(set(weights) - set(labels))
    if missing:
        raise KeyError(f"no label reward for MTR weight(s) {missing}")
    total = text
    for name, weight in weights.items():
        total = total + weight * labels[name]
    return total


def exact_kl(policy_logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` KL(π_θ ‖ π_ref) at each position, summed over the whole vocabulary of
    ``[B, T, V]`` log-probabilities. Ids neither may emit carry the same large negative value
    in both, so their terms are 0 (no ``0 · (−inf)``)."""
    return (policy_logp.exp() * (policy_logp - ref_logp)).sum(dim=-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the positions of ``mask`` (0 when it is empty)."""
    keep = mask.to(values.dtype)
    return (values * keep).sum() / keep.sum().clamp(min=1)


def diffro_loss(
    rewards: torch.Tensor, kl: torch.Tensor | None, mask: torch.Tensor, beta: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """``−mean(R) + β · KL`` with the KL of ``[B, T]`` token values averaged over ``mask``
    (``kl`` None: no reference model, β must be 0)."""
    loss = -rewards.mean()
    values = rewards.detach()
    spread = float(values.std()) if len(values) > 1 else 0.0
    stats = {"reward/total": float(values.mean()), "reward/total_std": spread}
    if kl is None:
        if beta:
            raise ValueError("beta > 0 needs the reference model's KL")
        return loss, stats
    mean_kl = masked_mean(kl, mask)
    stats["kl"] = float(mean_kl.detach())
    return loss + beta * mean_kl, stats
