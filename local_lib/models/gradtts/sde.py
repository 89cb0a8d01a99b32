"""The Grad-TTS diffusion: forward SDE marginal and the reverse-step Gaussian transition.

Forward SDE (Popov et al., 2021): ``dX = ½(μ − X)β_t dt + √β_t dW`` with the linear schedule
``β_t = β0 + (β1 − β0)t`` and ``Γ_t = ∫₀ᵗ β_s ds``. Its marginal given ``X₀`` is
``N(e^{−Γ/2}X₀ + (1 − e^{−Γ/2})μ, (1 − e^{−Γ})I)``.

Reverse step, t -> t − h. The reverse-time SDE is ``dX = [½(μ − X)β_t − β_t s(X, t)]dt + √β_t dW̄``
run with ``dt < 0``; one Euler–Maruyama step of size ``h`` backwards therefore *subtracts* the
drift:
``x_{t−h} = x_t − h[½(μ − x_t) − s]β_t + √(hβ_t) ε = x_t + hβ_t[½(x_t − μ) + s] + √(hβ_t) ε``.
So the transition is ``N(m_θ(x_t), hβ_t I)`` with ``m_θ(x_t) = x_t + hβ_t[½(x_t − μ) + s_θ]``.
The probability-flow ODE halves the score term and has no noise.

Temperature convention: the transition density is always the model's own ``N(m, hβ_t I)``
(temperature 1), so log-likelihoods and policy/reference ratios are those of the model. The
sampler's ``temperature`` only scales the prior draw ``x_1 = μ + ε / temperature`` (Grad-TTS's
convention: higher temperature, less noise).

Layout: every tensor here is ``[B, frames, n_mels]`` with a ``[B, frames]`` mask of valid frames;
``t`` and ``β_t`` may be Python floats or ``[B]`` tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def _per_item(value: float | Tensor, like: Tensor) -> Tensor:
    """Broadcast a scalar or ``[B]`` value against a ``[B, ...]`` tensor."""
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if value.dim() == 0:
        return value
    return value.view(-1, *([1] * (like.dim() - 1)))


def _frame_mask(mask: Tensor, like: Tensor) -> Tensor:
    """``[B, frames]`` mask -> float mask broadcastable to ``[B, frames, n_mels]``."""
    return mask.to(like.dtype).unsqueeze(-1)


@dataclass(frozen=True)
class NoiseSchedule:
    """Linear β schedule of Grad-TTS and the closed forms that follow from it."""

    beta_min: float = 0.05
    beta_max: float = 20.0

    def beta(self, t: float | Tensor) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.get_default_dtype())
        return self.beta_min + (self.beta_max - self.beta_min) * t

    def gamma(self, t: float | Tensor) -> Tensor:
        """``Γ_t = ∫₀ᵗ β_s ds``."""
        t = torch.as_tensor(t, dtype=torch.get_default_dtype())
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t

    def std(self, t: float | Tensor) -> Tensor:
        """Standard deviation ``σ_t = √(1 − e^{−Γ_t})`` of ``X_t | X₀``."""
        return torch.sqrt(1.0 - torch.exp(-self.gamma(t)))

    def marginal(self, x0: Tensor, mu: Tensor, t: float | Tensor) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of ``X_t | X₀`` (std broadcastable to ``x0``)."""
        decay = torch.exp(-0.5 * _per_item(self.gamma(t), x0))
        mean = decay * x0 + (1.0 - decay) * mu
        return mean, _per_item(self.std(t), x0)

    def sample_marginal(
        self,
        x0: Tensor,
        mu: Tensor,
        t: float | Tensor,
        mask: Tensor,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Draw ``X_t`` (zero on padding) and return it with the standard normal noise used."""
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        fmask = _frame_mask(mask, x0)
        noise = noise * fmask
        mean, std = self.marginal(x0, mu, t)
        return (mean + std * noise) * fmask, noise


def transition_mean(
    x_t: Tensor, mu: Tensor, score: Tensor, beta_t: float | Tensor, h: float, ode: bool = False
) -> Tensor:
    """Mean of the reverse step t -> t − h: ``x_t + hβ_t[½(x_t − μ) + s]`` (ODE: ``½ s``)."""
    weight = 0.5 if ode else 1.0
    return x_t + h * _per_item(beta_t, x_t) * (0.5 * (x_t - mu) + weight * score)


def _masked_sq_norm(diff: Tensor, mask: Tensor) -> Tensor:
    return (diff.pow(2) * _frame_mask(mask, diff)).flatten(1).sum(1)


def transition_logprob(
    x_next: Tensor, mean: Tensor, beta_t: float | Tensor, h: float, mask: Tensor
) -> Tensor:
    """``log N(x_next; mean, hβ_t I)`` summed over valid frames and mel bins -> ``[B]``."""
    var = h * torch.as_tensor(beta_t, dtype=x_next.dtype, device=x_next.device)
    count = mask.to(x_next.dtype).sum(1) * x_next.shape[-1]
    sq = _masked_sq_norm(x_next - mean, mask)
    return -0.5 * sq / var - 0.5 * count * torch.log(2.0 * math.pi * var)


def log_ratio(
    x_next: Tensor,
    mean_policy: Tensor,
    mean_ref: Tensor,
    beta_t: float | Tensor,
    h: float,
    mask: Tensor,
) -> Tensor:
    """``log p_θ(x'|x_t) − log p_ref(x'|x_t) = (‖x'−m_ref‖² − ‖x'−m_θ‖²)/(2hβ_t)`` -> ``[B]``.

    Written in closed form rather than as a difference of two log-densities: the shared
    normalising constants cancel exactly and the difference of two large numbers is avoided.
    """
    var = h * torch.as_tensor(beta_t, dtype=x_next.dtype, device=x_next.device)
    diff = _masked_sq_norm(x_next - mean_ref, mask) - _masked_sq_norm(x_next - mean_policy, mask)
    return diff / (2.0 * var)


def step_time(step: int, n_steps: int) -> float:
    """Time at which step ``step`` (0 = from pure noise) evaluates β and the score: the midpoint
    of its interval ``[1 − (step+1)h, 1 − step·h]``, as in Grad-TTS's sampler."""
    return 1.0 - (step + 0.5) / n_steps
