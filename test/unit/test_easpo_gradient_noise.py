"""EASPO gradient-noise diagnostic: the estimators by hand and on draws of known noise, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_easpo_loop import recipe  # noqa: F401  (the fixture: a tiny base, EASPM and corpus)

from local_lib.bin import easpo_gradient_noise
from local_lib.bin.easpo_gradient_noise import noise_summary, run_snr, signal_and_energy


def test_signal_and_energy_by_hand() -> None:
    # g1 = (1, 0), g2 = (0, 1), g3 = (1, 1): off-diagonal products 0, 1, 1; norms 1, 1, 2.
    # Unbiased |E g|² = (|g1 + g2 + g3|² − Σ|g_i|²) / (3·2) = (8 − 4) / 6 = 2/3.
    g = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    signal, energy = signal_and_energy(g @ g.T, np.arange(3))
    assert signal == pytest.approx(2 / 3) and energy == pytest.approx(4 / 3)
    summary = noise_summary(g @ g.T, draws=10, seed=0)
    assert summary["trace_cov"] == pytest.approx(2 / 3)
    assert summary["rho"] == pytest.approx(1.0) and summary["noise_scale"] == pytest.approx(1.0)
    # a resample that repeats a prompt never pairs it with itself
    signal, energy = signal_and_energy(g @ g.T, np.array([0, 0, 2]))
    assert signal == pytest.approx((1 + 1 + 1 + 1) / 4) and energy == pytest.approx(4 / 3)


def test_noise_scale_of_draws_with_known_mean_and_noise() -> None:
    """|μ|² = 1 and tr Σ = 50 · 0.2 = 10: B = 10 prompts; without a mean, no signal is resolved."""
    rng = np.random.default_rng(0)
    mean = np.zeros(50)
    mean[0] = 1.0
    g = mean + rng.normal(scale=math.sqrt(0.2), size=(400, 50))
    s = noise_summary(g @ g.T, draws=300, seed=1)
    assert s["noise_scale_low"] < 10.0 < s["noise_scale_high"]
    assert s["noise_scale"] == pytest.approx(10.0, rel=0.2)
    pure = rng.normal(scale=math.sqrt(0.2), size=(400, 50))
    s = noise_summary(pure @ pure.T, draws=300, seed=1)
    assert s["rho_low"] < 0.0 < s["rho_high"] and math.isinf(s["noise_scale_high"])


def test_run_snr() -> None:
    assert run_snr(0.01, 1600) == pytest.approx(4.0)
    assert run_snr(-0.01, 1600) == 0.0


def test_cli_writes_the_summary(recipe: Path) -> None:  # noqa: F811
    conf = recipe / "easpo.yaml"
    conf.write_text(
        "rollout: {n_steps: 4, k: 3, kappa: 0.25, t_max: 0.75, steps_per_chain: 2, beta: 1.0}\n"
        "train: {num_steps: 5, batch_size: 2, max_frames: 30}\n"
    )
    out = recipe / "noise"
    easpo_gradient_noise.main([
        "--config", str(conf), "--model", str(recipe / "base.pt"),
        "--easpm", str(recipe / "easpm.pt"), "--train-dir", str(recipe / "data/train"),
        "--feats-dir", str(recipe / "dump/train"), "--out-dir", str(out),
        "--num-prompts", "5", "--bootstrap", "20",
    ])  # fmt: skip
    s = json.loads((out / "gradient_noise.json").read_text())
    assert s["prompts"] == 5 and s["run_prompts"] == 10 and s["prompts_per_step"] == 2
    assert s["energy"] > 0 and math.isfinite(s["signal"])
    assert s["trace_cov"] == pytest.approx(s["energy"] - s["signal"])
    assert "| 5 |" in (out / "gradient_noise.md").read_text()
    with pytest.raises(SystemExit):
        easpo_gradient_noise.main(["--config", str(conf), "--model", "x", "--easpm", "y",
                                   "--train-dir", "d", "--feats-dir", "f", "--out-dir", "o",
                                   "--num-prompts", "2"])  # fmt: skip
