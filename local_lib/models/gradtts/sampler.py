"""Reverse-time sampling for Grad-TTS: N Euler steps of the reverse SDE or probability-flow ODE."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor

from local_lib.models.gradtts.sde import NoiseSchedule, step_time, transition_mean

ScoreFn = Callable[[Tensor, Tensor], Tensor]
"""``(x_t [B, frames, n_mels], t [B]) -> score`` with μ, mask and conditioning bound in."""

log = logging.getLogger(__name__)


def reverse_step(
    score_fn: ScoreFn,
    x_t: Tensor,
    mu: Tensor,
    mask: Tensor,
    step: int,
    n_steps: int,
    schedule: NoiseSchedule,
    ode: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One step t -> t − h: SDE draws from ``N(m_θ, hβ_t I)``, ODE takes its mean."""
    h = 1.0 / n_steps
    t = step_time(step, n_steps)
    beta_t = float(schedule.beta(t))
    t_batch = torch.full((x_t.shape[0],), t, dtype=x_t.dtype, device=x_t.device)
    mean = transition_mean(x_t, mu, score_fn(x_t, t_batch), beta_t, h, ode=ode)
    fmask = mask.to(x_t.dtype).unsqueeze(-1)
    if ode:
        return mean * fmask
    noise = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype, device=x_t.device)
    return (mean + (h * beta_t) ** 0.5 * noise) * fmask


def prior_sample(
    mu: Tensor, mask: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None
) -> Tensor:
    """``x_1 = μ + ε / temperature`` on valid frames (Grad-TTS's temperature convention)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    noise = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    return (mu + noise / temperature) * mask.to(mu.dtype).unsqueeze(-1)


def reverse_diffusion(
    score_fn: ScoreFn,
    x_init: Tensor,
    mu: Tensor,
    mask: Tensor,
    n_steps: int,
    schedule: NoiseSchedule,
    ode: bool = False,
    generator: torch.Generator | None = None,
    start: int = 0,
) -> Tensor:
    """Run the chain from step ``start`` (state time ``1 − start/N``) down to ``t = 0``."""
    if n_steps < 1 or not 0 <= start <= n_steps:
        raise ValueError(f"need n_steps >= 1 and 0 <= start <= n_steps, got {n_steps}, {start}")
    x = x_init
    for step in range(start, n_steps):
        x = reverse_step(score_fn, x, mu, mask, step, n_steps, schedule, ode, generator)
        log.debug("reverse step %d/%d", step + 1, n_steps)
    return x
