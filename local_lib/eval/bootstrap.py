"""Percentile bootstrap intervals over utterances, single-system and paired.

Utterances are the resampling unit. A metric is a ratio of sums ``Σ num / Σ den``: with
``den`` all ones it is a plain mean (SIM, accuracy, per-utterance WER), with ``den`` the
reference lengths it is corpus-level WER/CER. Resampling uses one seeded generator so RESULTS.md
is reproducible.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    n: int


def _as_arrays(num, den) -> tuple[np.ndarray, np.ndarray]:
    num = np.asarray(num, dtype=np.float64)
    den = np.ones_like(num) if den is None else np.asarray(den, dtype=np.float64)
    if num.ndim != 1 or num.shape != den.shape:
        raise ValueError(
            f"bootstrap needs two 1-D arrays of one length, got {num.shape} and {den.shape}"
        )
    if num.size == 0:
        raise ValueError("bootstrap needs at least one utterance")
    if not np.all(np.isfinite(num)) or not np.all(np.isfinite(den)):
        raise ValueError("bootstrap got a non-finite value")
    return num, den


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    total = den.sum(axis=-1)
    return num.sum(axis=-1) / np.where(total == 0, 1.0, total)


def _resample_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def _interval(point: float, draws: np.ndarray, n: int, confidence: float) -> Interval:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(draws, [tail, 100.0 - tail])
    return Interval(float(point), float(low), float(high), n)


def bootstrap_interval(
    num, den=None, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Interval of ``Σ num / Σ den`` (the mean of ``num`` when ``den`` is None)."""
    num, den = _as_arrays(num, den)
    idx = _resample_indices(num.size, n_resamples, seed)
    return _interval(_ratio(num, den), _ratio(num[idx], den[idx]), num.size, confidence)


def bootstrap_statistic(
    statistic: Callable[[np.ndarray], float],
    n: int,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Interval of any statistic of ``n`` units, given as a function of the units' indices
    (``np.arange(n)`` for the point estimate): for statistics that are not one ratio of sums,
    such as a slope fitted on the same resample it is applied to."""
    if n < 1:
        raise ValueError("bootstrap needs at least one utterance")
    draws = np.array([statistic(idx) for idx in _resample_indices(n, n_resamples, seed)])
    return _interval(statistic(np.arange(n)), draws, n, confidence)


def paired_bootstrap_interval(
    num_a,
    num_b,
    den_a=None,
    den_b=None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Interval of metric(A) − metric(B) on the same utterances, resampled jointly."""
    num_a, den_a = _as_arrays(num_a, den_a)
    num_b, den_b = _as_arrays(num_b, den_b)
    if num_a.size != num_b.size:
        raise ValueError(
            f"paired bootstrap needs the same utterances, got {num_a.size} and {num_b.size}"
        )
    idx = _resample_indices(num_a.size, n_resamples, seed)
    point = _ratio(num_a, den_a) - _ratio(num_b, den_b)
    draws = _ratio(num_a[idx], den_a[idx]) - _ratio(num_b[idx], den_b[idx])
    return _interval(point, draws, num_a.size, confidence)
