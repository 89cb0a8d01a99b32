"""Bootstrap intervals against known data."""

import numpy as np
import pytest

from local_lib.eval.bootstrap import (
    bootstrap_interval,
    bootstrap_statistic,
    paired_bootstrap_interval,
)


def test_constant_data_has_a_point_interval():
    iv = bootstrap_interval([0.3] * 50)
    assert (iv.estimate, iv.low, iv.high, iv.n) == pytest.approx((0.3, 0.3, 0.3, 50))


def test_mean_interval_matches_normal_theory():
    x = np.random.default_rng(0).normal(10.0, 2.0, size=400)
    iv = bootstrap_interval(x, n_resamples=2000)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert iv.estimate == pytest.approx(x.mean())
    assert iv.low < iv.estimate < iv.high
    assert (iv.high - iv.low) / 2 == pytest.approx(half, rel=0.15)


def test_ratio_of_sums_is_corpus_level():
    iv = bootstrap_interval([1, 0, 3], [4, 6, 2])
    assert iv.estimate == pytest.approx(4 / 12)


def test_seeded_and_reproducible():
    x = np.arange(30.0)
    assert bootstrap_interval(x, seed=3) == bootstrap_interval(x, seed=3)


def test_paired_difference_of_a_constant_shift_is_exact():
    x = np.random.default_rng(1).normal(size=100)
    iv = paired_bootstrap_interval(x + 0.5, x)
    assert iv.estimate == pytest.approx(0.5)
    assert iv.low == pytest.approx(0.5) and iv.high == pytest.approx(0.5)


def test_paired_is_tighter_than_unpaired_for_correlated_systems():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 1, 200)
    a, b = base + rng.normal(0.1, 0.05, 200), base
    paired = paired_bootstrap_interval(a, b)
    single = bootstrap_interval(a)
    assert paired.high - paired.low < (single.high - single.low) / 5
    assert paired.low > 0


def test_bad_input_is_rejected():
    with pytest.raises(ValueError):
        bootstrap_interval([])
    with pytest.raises(ValueError):
        bootstrap_interval([1.0, float("nan")])
    with pytest.raises(ValueError):
        paired_bootstrap_interval([1, 2], [1, 2, 3])


def test_statistic_of_indices_matches_the_mean_interval_and_refits_per_resample():
    values = np.random.default_rng(3).normal(size=30)
    mean = bootstrap_statistic(lambda idx: values[idx].mean(), 30, n_resamples=200, seed=4)
    same = bootstrap_interval(values, n_resamples=200, seed=4)
    assert (mean.estimate, mean.low, mean.high, mean.n) == pytest.approx(
        (same.estimate, same.low, same.high, same.n)
    )
    # a statistic of two columns fitted on each resample: a slope through the origin
    x = np.arange(1.0, 31.0)
    y = 2.0 * x + np.random.default_rng(5).normal(size=30)
    slope = bootstrap_statistic(lambda idx: (x[idx] @ y[idx]) / (x[idx] @ x[idx]), 30, seed=0)
    assert slope.estimate == pytest.approx((x @ y) / (x @ x))
    assert slope.low < slope.estimate < slope.high and 1.9 < slope.low and slope.high < 2.1
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_statistic(lambda idx: 0.0, 0)
