"""Best-of-N picks: which of a text's N samples the reward, chance and the evaluator choose, and
how far apart the evaluators find those choices (``local_lib.bin.best_of_n``).

Kept apart from the models so a fake judge can check every pick by hand. Per text:

* (a) the reward pick: the argmax of the reward, the first sample on a tie;
* (b) the random pick: sample ``numpy.random.default_rng(utterance_seed(seed, utt))
  .integers(N)``, so it depends on the seed and the text id alone (not on the order or on a
  resumed run);
* (c) the evaluator pick: the lowest evaluator WER, a tie broken by the lower CER, then the first;
* (d) the mean over all N samples: what a random pick gives in expectation.

(a) − (b) is how much of what the evaluator hears the reward's choices carry: if it is zero, no
method trained on that reward can be expected to gain. (c) − (b) is the headroom in the policy's
own diversity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from local_lib.bin.synth_gradtts import utterance_seed
from local_lib.eval.bootstrap import Interval, bootstrap_interval, paired_bootstrap_interval

REWARD, RANDOM, EVALUATOR, MEAN = (
    "(a) reward pick", "(b) random pick", "(c) evaluator pick", "(d) mean of N"
)  # fmt: skip
PICKS = (REWARD, RANDOM, EVALUATOR, MEAN)
DIFFERENCES = ((REWARD, RANDOM), (EVALUATOR, RANDOM), (REWARD, MEAN))
# metric -> (table heading, scale, decimals)
METRICS = {
    "wer": ("evaluator WER (%)", 100.0, 2),
    "cer": ("evaluator CER (%)", 100.0, 2),
    "sim": ("speaker SIM", 1.0, 3),
    "reward": ("reward", 1.0, 3),
}


def evenly_spaced(total: int, count: int) -> list[int]:
    """``min(count, total)`` indices spread evenly over ``range(total)``, the first and the last
    included, so a diagnostic on a few prompts still spans the whole (sorted) set."""
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, min(count, total))})


@dataclass(frozen=True)
class TextSamples:
    """The N samples of one text: the reward's score and the evaluators' scores of each."""

    utt: str
    reward: Sequence[float]
    wer: Sequence[float]
    cer: Sequence[float]
    sim: Sequence[float] | None = None  # speaker SIM to the prompt, when a speaker model is given

    def __post_init__(self) -> None:
        sizes = {len(v) for v in (self.reward, self.wer, self.cer, self.sim) if v is not None}
        if len(sizes) != 1 or 0 in sizes:
            raise ValueError(f"{self.utt}: need the same number (>= 1) of every score, got {sizes}")

    def values(self, metric: str) -> np.ndarray:
        return np.asarray(getattr(self, metric), dtype=np.float64)


@dataclass(frozen=True)
class Picks:
    """Sample indices of one text's picks (see the module docstring for the rules)."""

    reward: int
    random: int
    evaluator: int


def pick(samples: TextSamples, seed: int) -> Picks:
    n = len(samples.reward)
    rng = np.random.default_rng(utterance_seed(seed, samples.utt))
    return Picks(
        reward=int(np.argmax(samples.values("reward"))),
        random=int(rng.integers(n)),
        evaluator=min(range(n), key=lambda k: (samples.wer[k], samples.cer[k])),
    )


def reward_wer_spearman(samples: TextSamples) -> float | None:
    """Spearman's rho of reward and evaluator WER over one text's samples (negative when the
    reward ranks them as the evaluator does); None when either is constant."""
    reward, wer = samples.values("reward"), samples.values("wer")
    if np.ptp(reward) == 0 or np.ptp(wer) == 0:
        return None
    return float(spearmanr(reward, wer).statistic)


@dataclass(frozen=True)
class Headroom:
    """Per pick and metric the mean over texts, the paired differences of ``DIFFERENCES`` (each
    with its 95 % bootstrap interval over texts), and the mean within-text Spearman rho."""

    texts: int
    metrics: list[str]
    picks: dict[str, dict[str, Interval]]
    differences: dict[tuple[str, str], dict[str, Interval]]
    spearman: Interval | None  # over the texts where reward and WER both vary
    seed: int


def summarise(texts: Sequence[TextSamples], seed: int) -> Headroom:
    """The picks of every text and their comparison; ``seed`` draws the random picks and the
    bootstrap resamples."""
    if not texts:
        raise ValueError("no texts to summarise")
    with_sim = {t.sim is not None for t in texts}
    if len(with_sim) != 1:
        raise ValueError("some texts have a speaker SIM and some do not")
    metrics = [m for m in METRICS if m != "sim" or with_sim == {True}]
    per_pick: dict[str, dict[str, list[float]]] = {p: {m: [] for m in metrics} for p in PICKS}
    for t in texts:
        chosen = pick(t, seed)
        for m in metrics:
            v = t.values(m)
            per_pick[REWARD][m].append(v[chosen.reward])
            per_pick[RANDOM][m].append(v[chosen.random])
            per_pick[EVALUATOR][m].append(v[chosen.evaluator])
            per_pick[MEAN][m].append(v.mean())
    rhos = [r for r in map(reward_wer_spearman, texts) if r is not None]
    return Headroom(
        texts=len(texts),
        metrics=metrics,
        picks={
            p: {m: bootstrap_interval(per_pick[p][m], seed=seed) for m in metrics} for p in PICKS
        },
        differences={
            (a, b): {
                m: paired_bootstrap_interval(per_pick[a][m], per_pick[b][m], seed=seed)
                for m in metrics
            }
            for a, b in DIFFERENCES
        },
        spearman=bootstrap_interval(rhos, seed=seed) if rhos else None,
        seed=seed,
    )


def _cell(iv: Interval, metric: str, signed: bool = False) -> str:
    _, scale, decimals = METRICS[metric]
    sign = "+" if signed else ""
    # rounded first, so a float-noise difference shows as +0.00, not -0.00
    values = (round(scale * x, decimals) + 0.0 for x in (iv.estimate, iv.low, iv.high))
    est, low, high = (f"{x:{sign}.{decimals}f}" for x in values)
    return f"{est} [{low}, {high}]"


def render(h: Headroom) -> str:
    """Markdown: the picks, their paired differences and the rank agreement, with a note on
    how to read them."""
    heads = [METRICS[m][0] for m in h.metrics]
    rule = "|---" * (len(heads) + 1) + "|"
    lines = ["| pick | " + " | ".join(heads) + " |", rule]
    for p in PICKS:
        lines.append(f"| {p} | " + " | ".join(_cell(h.picks[p][m], m) for m in h.metrics) + " |")
    lines += ["", "| paired difference | " + " | ".join(heads) + " |", rule]
    for a, b in DIFFERENCES:
        cells = " | ".join(_cell(h.differences[a, b][m], m, signed=True) for m in h.metrics)
        lines.append(f"| {a} − {b} | {cells} |")
    if h.spearman is None:
        rho = "undefined: the reward or the WER is constant within every text"
    else:
        iv = h.spearman
        rho = f"{iv.estimate:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}] over {iv.n} texts"
    lines += [
        "",
        f"Spearman rho of reward and evaluator WER within a text, mean over texts: {rho}. "
        "Negative: the reward ranks the samples as the evaluator does; texts where either is "
        "constant are left out.",
        "",
        f"{h.texts} texts; values are means over texts of per-utterance rates, with 95 % "
        f"percentile bootstrap intervals over texts (1000 resamples, seed {h.seed}). "
        "(a) − (b) is what the reward's choices carry of what the evaluators hear: where it is "
        "zero, no method trained on this reward can be expected to gain on them. (c) − (b) is "
        "the headroom in the policy's own diversity. (a) − (d) estimates "
        "what (a) − (b) does with less noise (the mean of N is the expected random pick). The "
        f"random pick of text `utt` is sample `numpy.random.default_rng(utterance_seed({h.seed}, "
        "utt)).integers(N)` (local_lib.bin.synth_gradtts.utterance_seed).",
    ]
    return "\n".join(lines) + "\n"
