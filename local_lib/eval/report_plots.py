"""The report's PNG figures: training curves, per-utterance scatter, metric bars; and the
reward-transfer scatter of ``local_lib.bin.reward_transfer``.

Matplotlib runs on the Agg backend (no display on cluster nodes); each figure is written
atomically, so a killed stage 8 never leaves a truncated PNG that a re-run would link.
"""

import math
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from local_lib.atomic_io import atomic_path  # noqa: E402
from local_lib.eval.bootstrap import Interval  # noqa: E402
from local_lib.eval.report_inputs import Run, curve_points  # noqa: E402


def _grid(n_panels: int, max_cols: int = 3, size: float = 3.6):
    cols = min(max_cols, n_panels)
    rows = math.ceil(n_panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n_panels])


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` points (fewer at the start), so RL curves that
    jump from step to step still show their trend. ``window`` >= 1."""
    sums = np.cumsum(np.asarray(values, dtype=np.float64))
    out = []
    for k in range(len(values)):
        start = max(0, k + 1 - window)
        total = sums[k] - (sums[start - 1] if start > 0 else 0.0)
        out.append(float(total / (k + 1 - start)))
    return out


def plot_curves(runs: list[Run], keys: list[str], path: Path, smooth: int = 1) -> None:
    """One panel per key, one line per run, logged step on x; with ``smooth`` > 1 the raw
    values are drawn faint under their moving average."""
    fig, axes = _grid(len(keys))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axes, keys):
        for k, run in enumerate(runs):
            steps, values = curve_points(run, key)
            if not steps:
                continue
            colour = colours[k % len(colours)]
            if smooth > 1:
                ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
                values = moving_average(values, smooth)
            ax.plot(steps, values, color=colour, label=run.name, linewidth=1.2)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    _save(fig, path)


def plot_scatter(
    column: str,
    baseline: str,
    pairs: dict[str, tuple[list[float], list[float]]],
    path: Path,
) -> None:
    """One panel per system: its per-utterance ``column`` (y) against the baseline's (x), with
    the diagonal y = x; points off the diagonal are utterances the system changed."""
    fig, axes = _grid(len(pairs))
    for ax, (name, (xs, ys)) in zip(axes, pairs.items()):
        ax.scatter(xs, ys, s=12, alpha=0.6)
        values = [*xs, *ys] or [0.0, 1.0]
        lo, hi = min(values), max(values)
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="grey", linewidth=1, ls="--")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        ax.set_xlabel(f"{baseline}: {column}")
        ax.set_ylabel(f"{name}: {column}")
        ax.set_title(f"{name} vs {baseline} ({len(xs)} utts)", fontsize=10)
        ax.grid(alpha=0.3)
    _save(fig, path)


def plot_bars(
    metric_names: list[str], systems: list[str], table: dict[str, dict[str, Interval]], path: Path
) -> None:
    """One panel per metric, one bar per system, whiskers at the 95 % bootstrap interval.
    ``table[system][metric]`` may be missing where a system does not define the metric."""
    fig, axes = _grid(len(metric_names), max_cols=4, size=3.2)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes, metric_names):
        for k, name in enumerate(systems):
            iv = table[name].get(metric)
            if iv is None:
                continue
            err = [[iv.estimate - iv.low], [iv.high - iv.estimate]]
            ax.bar(k, iv.estimate, yerr=err, capsize=4, color=colours[k % len(colours)])
        ax.set_xticks(range(len(systems)), systems, rotation=30, ha="right", fontsize=8)
        ax.set_title(metric, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def transfer_scatter(
    changes: dict[str, tuple[list[float], list[float]]], slope: float, path: Path
) -> None:
    """A panel per system: each text's reward gain against its WER change (points), with the
    line the base's within-text slope predicts; points above the line are WER the gain did not
    buy."""
    fig, axes = _grid(len(changes))
    for ax, (name, (gains, wers)) in zip(axes, changes.items()):
        ax.scatter(gains, wers, s=12, alpha=0.7)
        low, high = min(0.0, *gains), max(0.0, *gains)
        ax.plot([low, high], [slope * low, slope * high], color="C3", lw=1, label="predicted")
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.axvline(0.0, color="grey", lw=0.5)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("reward gain")
        ax.set_ylabel("WER change (points)")
        ax.legend(fontsize=7)
    _save(fig, path)
