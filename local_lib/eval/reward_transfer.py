"""Reward transfer: does the reward a trained policy gained buy what the same reward buys when
it chooses among the base's samples (``local_lib.bin.reward_transfer``)?

Best-of-N (``local_lib.eval.picks``) shows whether a reward *ranks* samples as the evaluator
does. A method can still raise its reward without the evaluator hearing it: by moving along
directions the reward values and the evaluator does not. This module puts the two on one scale.
From the base's N samples of each text t (reward r_tk, evaluator WER w_tk):

    slope      b = Σ_t Σ_k (r_tk − r̄_t)(w_tk − w̄_t) / Σ_t Σ_k (r_tk − r̄_t)²

the WER change per unit of reward among one text's samples (pooled within texts, so texts
that are hard for both do not make the slope). With the system's samples of the same texts:

    reward gain    Δr = mean_t (r̄ˢ_t − r̄ᵇ_t)
    WER change     Δw = mean_t (w̄ˢ_t − w̄ᵇ_t)
    predicted      b · Δr          (the WER change the reward gain buys among samples)
    shortfall      Δw − b · Δr     (0: the gain transfers as selection's does)

Each with a percentile bootstrap interval over texts; the slope is refitted on every resample,
so its uncertainty is in the predicted change and the shortfall. A shortfall whose interval
excludes zero while Δr's does too says the policy found reward the evaluator does not hear.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from local_lib.eval.bootstrap import Interval, bootstrap_statistic
from local_lib.eval.picks import TextSamples

WER_SCALE = 100.0  # WER in points
RESAMPLES = 1000


@dataclass(frozen=True)
class Transfer:
    """One system against the base: the quantities of the module docstring, WER in points."""

    slope: Interval  # WER points per unit of reward, among the base's samples of a text
    reward_gain: Interval
    wer_change: Interval
    predicted: Interval
    shortfall: Interval
    text_reward_gains: tuple[float, ...]  # per text, the base's order
    text_wer_changes: tuple[float, ...]


def matched(
    base: Sequence[TextSamples], system: Sequence[TextSamples], name: str
) -> list[tuple[TextSamples, TextSamples]]:
    """The base's and the system's samples of each text, in the base's order; both must hold
    the same texts."""
    by_utt = {t.utt: t for t in system}
    ours = [t.utt for t in base]
    missing, extra = sorted(set(ours) - set(by_utt)), sorted(set(by_utt) - set(ours))
    if missing or extra:
        raise ValueError(
            f"{name}: the base and the system must sample the same texts; only the base has "
            f"{missing[:3]} ({len(missing)}), only the system {extra[:3]} ({len(extra)})"
        )
    return [(t, by_utt[t.utt]) for t in base]


def _centred(samples: TextSamples) -> tuple[float, float]:
    """One text's Σ (r − r̄)(w − w̄) and Σ (r − r̄)²."""
    r, w = samples.values("reward"), samples.values("wer")
    dr = r - r.mean()
    return float(dr @ (w - w.mean())), float(dr @ dr)


def transfer(
    base: Sequence[TextSamples],
    system: Sequence[TextSamples],
    name: str = "system",
    seed: int = 0,
) -> Transfer:
    """The reward transfer of ``system`` against ``base`` (module docstring)."""
    pairs = matched(base, system, name)
    cov, var = np.array([_centred(b) for b, _ in pairs]).T
    if not var.sum() > 0:
        raise ValueError(f"{name}: the reward is constant within every text of the base")
    d_reward = np.array([s.values("reward").mean() - b.values("reward").mean() for b, s in pairs])
    d_wer = WER_SCALE * np.array(
        [s.values("wer").mean() - b.values("wer").mean() for b, s in pairs]
    )

    def slope(idx: np.ndarray) -> float:
        total = var[idx].sum()
        return WER_SCALE * cov[idx].sum() / total if total > 0 else 0.0

    def predicted(idx: np.ndarray) -> float:
        return slope(idx) * d_reward[idx].mean()

    def interval(statistic) -> Interval:
        return bootstrap_statistic(statistic, len(pairs), RESAMPLES, seed=seed)

    return Transfer(
        slope=interval(slope),
        reward_gain=interval(lambda idx: d_reward[idx].mean()),
        wer_change=interval(lambda idx: d_wer[idx].mean()),
        predicted=interval(predicted),
        shortfall=interval(lambda idx: d_wer[idx].mean() - predicted(idx)),
        text_reward_gains=tuple(d_reward.tolist()),
        text_wer_changes=tuple(d_wer.tolist()),
    )


def _cell(iv: Interval, decimals: int) -> str:
    values = (round(x, decimals) + 0.0 for x in (iv.estimate, iv.low, iv.high))  # no -0.00
    est, low, high = (f"{x:+.{decimals}f}" for x in values)
    return f"{est} [{low}, {high}]"


def render(results: Mapping[str, Transfer], texts: int, seed: int) -> str:
    """Markdown: a row per system, and how to read it."""
    lines = [
        "| system | reward gain | WER change (points) | predicted by the slope | shortfall |",
        "|---|---|---|---|---|",
    ]
    for name, t in results.items():
        cells = [_cell(t.reward_gain, 3), _cell(t.wer_change, 2), _cell(t.predicted, 2),
                 _cell(t.shortfall, 2)]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    slope = next(iter(results.values())).slope
    lines += [
        "",
        f"Slope among the base's samples of a text: {_cell(slope, 2)} WER points per unit of "
        "reward (pooled within texts).",
        "",
        f"{texts} texts; system − base of the per-text means over samples; 95 % percentile "
        f"bootstrap intervals over texts ({RESAMPLES} resamples, seed {seed}), the slope "
        "refitted on each. *Predicted*: the WER change the reward gain would buy if it bought "
        "WER as the reward's ranking of one text's samples does. *Shortfall* = WER change − "
        "predicted: above zero, the policy gained reward the evaluator does not hear.",
    ]
    return "\n".join(lines) + "\n"
