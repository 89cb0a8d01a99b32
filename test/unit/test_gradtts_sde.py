"""Grad-TTS diffusion math: forward marginal, reverse transition density and log-ratio."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from local_lib.models.gradtts import (
    NoiseSchedule,
    log_ratio,
    reverse_diffusion,
    reverse_step,
    step_time,
    transition_logprob,
    transition_mean,
)

SCHEDULE = NoiseSchedule(0.05, 20.0)


def test_beta_and_gamma_closed_forms() -> None:
    assert float(SCHEDULE.beta(0.0)) == pytest.approx(0.05)
    assert float(SCHEDULE.beta(1.0)) == pytest.approx(20.0)
    # Γ_1 = β0 + (β1 − β0)/2 = 0.05 + 9.975
    assert float(SCHEDULE.gamma(1.0)) == pytest.approx(10.025)
    # Γ is the integral of β: compare with a fine trapezoid rule
    ts = torch.linspace(0, 0.6, 6001, dtype=torch.float64)
    assert float(torch.trapezoid(SCHEDULE.beta(ts), ts)) == pytest.approx(
        float(SCHEDULE.gamma(0.6))
    )


def test_transition_mean_formula() -> None:
    x, mu, s = (
        torch.tensor([[[1.0, -2.0]]]),
        torch.tensor([[[0.5, 0.5]]]),
        torch.tensor([[[0.2, 1.0]]]),
    )
    h, beta = 0.1, 4.0
    # x + hβ(½(x − μ) + s): 1 + 0.4(0.25 + 0.2) = 1.18 ; −2 + 0.4(−1.25 + 1) = −2.1
    assert torch.allclose(transition_mean(x, mu, s, beta, h), torch.tensor([[[1.18, -2.1]]]))
    # ODE halves the score: 1 + 0.4(0.25 + 0.1) = 1.14 ; −2 + 0.4(−1.25 + 0.5) = −2.3
    assert torch.allclose(
        transition_mean(x, mu, s, beta, h, ode=True), torch.tensor([[[1.14, -2.3]]])
    )


def _random_case(seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x_next = torch.randn(3, 7, 4, generator=g, dtype=torch.float64)
    m_pol = torch.randn(3, 7, 4, generator=g, dtype=torch.float64)
    m_ref = torch.randn(3, 7, 4, generator=g, dtype=torch.float64)
    mask = torch.arange(7)[None, :] < torch.tensor([7, 4, 1])[:, None]
    return x_next, m_pol, m_ref, mask


def test_transition_logprob_matches_normal() -> None:
    x_next, m_pol, _, mask = _random_case(0)
    h, beta = 0.05, 3.0
    expected = Normal(m_pol, math.sqrt(h * beta)).log_prob(x_next)
    expected = (expected * mask[..., None]).flatten(1).sum(1)
    got = transition_logprob(x_next, m_pol, beta, h, mask)
    assert torch.allclose(got, expected)
    # padding frames carry no probability mass: changing them changes nothing
    x_pad = x_next.clone()
    x_pad[2, 1:] += 100.0
    assert torch.allclose(transition_logprob(x_pad, m_pol, beta, h, mask), got)


def test_log_ratio_matches_difference_of_normals() -> None:
    x_next, m_pol, m_ref, mask = _random_case(1)
    h = 0.1
    beta = torch.tensor([1.0, 5.0, 12.0], dtype=torch.float64)  # per-item β_t
    lp_pol = transition_logprob(x_next, m_pol, beta, h, mask)
    lp_ref = transition_logprob(x_next, m_ref, beta, h, mask)
    std = torch.sqrt(h * beta)[:, None, None]
    direct = Normal(m_pol, std).log_prob(x_next) - Normal(m_ref, std).log_prob(x_next)
    direct = (direct * mask[..., None]).flatten(1).sum(1)
    got = log_ratio(x_next, m_pol, m_ref, beta, h, mask)
    assert torch.allclose(got, direct)
    assert torch.allclose(got, lp_pol - lp_ref)
    assert torch.allclose(
        log_ratio(x_next, m_pol, m_pol, beta, h, mask), torch.zeros(3, dtype=torch.float64)
    )


def test_forward_marginal_matches_euler_maruyama() -> None:
    """Simulate dX = ½(μ − X)β_t dt + √β_t dW from X₀ and compare mean/variance at t = 0.3."""
    g = torch.Generator().manual_seed(0)
    n_paths, t_end, n_sim = 8000, 0.3, 200
    x0 = torch.tensor([2.0, -1.0, 0.0], dtype=torch.float64)
    mu = torch.tensor([-1.0, 0.5, 3.0], dtype=torch.float64)
    x = x0.expand(n_paths, 3).clone()
    dt = t_end / n_sim
    for i in range(n_sim):
        beta = float(SCHEDULE.beta((i + 0.5) * dt))
        x = (
            x
            + 0.5 * (mu - x) * beta * dt
            + math.sqrt(beta * dt) * torch.randn(x.shape, generator=g, dtype=torch.float64)
        )
    mean, std = SCHEDULE.marginal(x0, mu, t_end)
    assert torch.allclose(x.mean(0), mean, atol=0.04)
    assert torch.allclose(x.var(0), std**2 * torch.ones(3, dtype=torch.float64), rtol=0.06)
    # and the sampler of the marginal draws with the same moments
    xt, _ = SCHEDULE.sample_marginal(
        x0.expand(1, n_paths, 3),
        mu.expand(1, n_paths, 3),
        t_end,
        torch.ones(1, n_paths, dtype=torch.bool),
        generator=g,
    )
    assert torch.allclose(xt[0].mean(0), mean, atol=0.04)


@pytest.mark.parametrize("ode", [False, True])
def test_reverse_chain_with_exact_score_recovers_data(ode: bool) -> None:
    """With data X₀ ~ N(c, s²I) the score of every marginal is known in closed form; running the
    reverse sampler with it must land back on N(c, s²) — this pins the sign of the reverse mean."""
    g = torch.Generator().manual_seed(1)
    c, s = 1.5, 0.5
    mu = torch.full((1, 4000, 2), -1.0, dtype=torch.float64)
    mask = torch.ones(1, 4000, dtype=torch.bool)

    def exact_score(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        gamma = SCHEDULE.gamma(t).double().view(-1, 1, 1)
        mean = torch.exp(-gamma / 2) * c + (1 - torch.exp(-gamma / 2)) * mu
        var = torch.exp(-gamma) * s**2 + 1 - torch.exp(-gamma)
        return -(x_t - mean) / var

    x1 = mu + torch.randn(mu.shape, generator=g, dtype=torch.float64)
    x0 = reverse_diffusion(exact_score, x1, mu, mask, 400, SCHEDULE, ode=ode, generator=g)
    assert float(x0.mean()) == pytest.approx(c, abs=0.05)
    assert float(x0.std()) == pytest.approx(s, abs=0.05)


@pytest.mark.parametrize("ode", [False, True])
def test_reverse_diffusion_resumes_from_a_later_step(ode: bool) -> None:
    """Steps 0..2 by hand, then ``start=3``, equals the whole chain drawn from the same seed."""
    mu = torch.zeros(1, 6, 2, dtype=torch.float64)
    mask = torch.tensor([[True] * 5 + [False]])

    def score(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -(x_t - 0.3) * (1.0 + t.view(-1, 1, 1))

    x1 = torch.randn(mu.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    whole = reverse_diffusion(score, x1, mu, mask, 6, SCHEDULE, ode=ode, generator=g)
    g = torch.Generator().manual_seed(5)
    x = x1
    for step in range(3):
        x = reverse_step(score, x, mu, mask, step, 6, SCHEDULE, ode, g)
    resumed = reverse_diffusion(score, x, mu, mask, 6, SCHEDULE, ode=ode, generator=g, start=3)
    assert torch.equal(whole, resumed)
    assert torch.equal(reverse_diffusion(score, x1, mu, mask, 6, SCHEDULE, start=6), x1)
    with pytest.raises(ValueError, match="start"):
        reverse_diffusion(score, x1, mu, mask, 6, SCHEDULE, start=7)


def test_step_time_is_interval_midpoint() -> None:
    assert step_time(0, 4) == pytest.approx(0.875)
    assert step_time(3, 4) == pytest.approx(0.125)
