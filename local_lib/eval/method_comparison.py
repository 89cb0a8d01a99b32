"""Several methods trained from one base under one stage-5 budget, in one report
(egs/libritts/compare): what each bought, at what cost, and against the base and the best rival.

Each method ran under its own recipe tag, so it comes with its own copy of the base's scores:
the evaluators' (the same for every method: the base's audio is the same) and its reward
model's view (``synth/<set>/reward_asr``, absent for a reward that reads no audio, DiffRO's).
The evaluator tables and paired differences are ``local_lib.eval.report.build_report``'s; this
module adds the one summary table, the reward-model view paired against the base seen by that
same reward model, and the plot of evaluator WER against stage-5 CPU seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from local_lib.eval.bootstrap import Interval
from local_lib.eval.report import (
    ReportRequest,
    _decimals,
    _interval_cell,
    _row,
    build_report,
    system_table,
)
from local_lib.eval.report_inputs import load_systems
from local_lib.eval.report_plots import _save, plt
from local_lib.eval.score_table import CORPUS_METRICS, Metric, compare, summarise
from local_lib.train.trainer import METRICS_FILE, read_metrics


def corpus_metric(column: str) -> Metric:
    """The corpus metric read from scores column ``column`` (by name: the list's order moves)."""
    return next(m for m in CORPUS_METRICS if m.num == column)


WER, CER, SIM = (corpus_metric(c) for c in ("word_errors", "char_errors", "spk_sim"))
REWARD_VIEW = "reward_asr"  # the sub-dir of a synth dir holding the reward model's scores
PLOT_FILE = "wer_vs_cpu.png"


@dataclass(frozen=True)
class MethodRun:
    """One method's stage-5 dir (``metrics.jsonl``, ``synth/<set>``), its tag's base dir, and
    the dirs (``synth/<set>``) of its checkpoints along the way, by step."""

    name: str
    directory: Path
    base_directory: Path
    checkpoints: tuple[tuple[int, Path], ...] = ()


@dataclass(frozen=True)
class Cost:
    """What stage 5 spent: steps, CPU seconds (``cpu_s`` of the budget; None when the run had
    no budget) and the mean rollout throughput where the method logs one: tokens/s, and
    samples/s as each step's tokens/s over its mean completion length (``completion_len``)."""

    steps: int
    cpu_s: float | None
    tokens_per_s: float | None
    samples_per_s: float | None = None


def parse_method(spec: str) -> MethodRun:
    """``NAME=METHOD_DIR,BASE_DIR`` (``grpo=exp/tts_grpo_grpo,exp/tts_base_grpo``)."""
    name, sep, dirs = spec.partition("=")
    parts = dirs.split(",")
    if not sep or not name or len(parts) != 2 or not all(parts):
        raise ValueError(f"--method {spec!r}: expected NAME=METHOD_DIR,BASE_DIR")
    return MethodRun(name, Path(parts[0]), Path(parts[1]))


def parse_checkpoint(spec: str) -> tuple[str, int, Path]:
    """``NAME=STEP,DIR`` (``grpo=10,exp/tts_base_grpo_at10``)."""
    name, sep, rest = spec.partition("=")
    step, _, directory = rest.partition(",")
    if not sep or not name or not step.isdigit() or not directory:
        raise ValueError(f"--checkpoint {spec!r}: expected NAME=STEP,DIR")
    return name, int(step), Path(directory)


def with_checkpoints(runs: list[MethodRun], specs: list[str]) -> list[MethodRun]:
    """``runs`` with the ``--checkpoint`` specs attached to their methods, by step."""
    found: dict[str, list[tuple[int, Path]]] = {r.name: [] for r in runs}
    for spec in specs:
        name, step, directory = parse_checkpoint(spec)
        if name not in found:
            raise ValueError(f"--checkpoint {spec!r}: no --method {name}")
        found[name].append((step, directory))
    return [replace(r, checkpoints=tuple(sorted(found[r.name]))) for r in runs]


def _records(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise ValueError(f"{path}: no stage-5 metrics (did stage 5 run?)")
    records = read_metrics(path)
    if not records:
        raise ValueError(f"{path}: no logged step")
    return records


def cpu_s_at(run_dir: Path, step: int) -> float:
    """The ``cpu_s`` logged at ``step`` (a checkpoint's step: the budget logs every save)."""
    for record in _records(run_dir):
        if record["step"] == step and "cpu_s" in record:
            return record["cpu_s"]
    raise ValueError(f"{run_dir / METRICS_FILE}: no cpu_s logged at step {step}")


def stage5_cost(run_dir: Path) -> Cost:
    records = _records(run_dir)
    rates = [r["rollout_tokens_per_s"] for r in records if "rollout_tokens_per_s" in r]
    samples = [
        r["rollout_tokens_per_s"] / r["completion_len"]
        for r in records
        if "rollout_tokens_per_s" in r and r.get("completion_len", 0) > 0
    ]
    return Cost(
        steps=int(records[-1]["step"]),
        cpu_s=records[-1].get("cpu_s"),
        tokens_per_s=_mean(rates),
        samples_per_s=_mean(samples),
    )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def best_others(wer: dict[str, float]) -> dict[str, str]:
    """For each method, the other method with the lowest evaluator WER (ties: by name)."""
    return {
        name: min((w, other) for other, w in wer.items() if other != name)[1]
        for name in wer
        if len(wer) > 1
    }


def plot_wer_vs_cpu(points: dict[str, list[tuple[float, Interval]]], path: Path) -> None:
    """One line per method through (CPU seconds, evaluator WER) points, 95 % whiskers."""
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    for name, line in points.items():
        xs, ivs = [x for x, _ in line], [iv for _, iv in line]
        ys = [iv.estimate for iv in ivs]
        err = [[iv.estimate - iv.low for iv in ivs], [iv.high - iv.estimate for iv in ivs]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=name)
    ax.set_xlabel("stage-5 CPU seconds (all ranks)")
    ax.set_ylabel(f"evaluator {WER.name}")
    ax.set_title("evaluator WER against stage-5 CPU seconds")
    ax.legend()
    _save(fig, path)


def _cell(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _view_of(run: MethodRun, synth: str) -> tuple[Path, Path] | None:
    mine, base = run.directory / synth / REWARD_VIEW, run.base_directory / synth / REWARD_VIEW
    return (mine, base) if (mine / "scores.tsv").is_file() and (base / "scores.tsv").is_file() \
        else None  # fmt: skip


def comparison_sections(
    runs: list[MethodRun], dset: str, out_dir: Path, seed: int
) -> tuple[list[str], dict[str, str]]:
    """The summary table, the reward-model view and the plot (written into ``out_dir``);
    returns the markdown lines and each method's best rival."""
    synth = f"synth/{dset}"
    base = load_systems([("base", runs[0].base_directory / synth)])[0]
    methods = load_systems([(r.name, r.directory / synth) for r in runs])
    table = system_table([base, *methods], [WER, CER, SIM], seed)
    costs = {r.name: stage5_cost(r.directory) for r in runs}
    rival = best_others({m.name: table[m.name][WER.name].estimate for m in methods})
    views = {}
    for run in runs:
        found = _view_of(run, synth)
        if found is not None:
            mine, theirs = load_systems([(run.name, found[0]), ("base", found[1])])
            views[run.name] = (
                summarise(list(mine.rows.values()), WER, seed),
                compare(mine.rows, theirs.rows, WER, seed),
            )
    lines = [
        "## One table",
        "",
        f"Test set `{dset}`. Evaluator {WER.name}, {CER.name} and {SIM.name}: value [95 % "
        "bootstrap interval]. Reward-model WER: each method's own reward ASR on its audio (— "
        "for a reward that reads no audio). Stage-5 CPU s: what the run spent when it stopped "
        "(the budget, `train.budget_cpu_s`); rollout tokens/s: its mean logged rollout "
        "throughput (— where the method logs none); rollout samples/s: the same over the mean "
        "completion length, completions drawn per second of rollout. Best rival: the other "
        f"method with the lowest evaluator {WER.name}; the paired sections below compare "
        "against it.",
        "",
        _row(["system", WER.name, CER.name, SIM.name, "reward-model WER (%)", "stage-5 steps",
              "stage-5 CPU s", "rollout tokens/s", "rollout samples/s",
              "best rival"]),  # fmt: skip
        _row(["---"] * 10),
    ]
    cells = table["base"]
    base_cells = (_interval_cell(cells.get(m.name), _decimals(m)) for m in (WER, CER, SIM))
    lines.append(_row(["base", *base_cells, "—", "0", "0", "—", "—", "—"]))
    for m in methods:
        cost, cells = costs[m.name], table[m.name]
        view = views.get(m.name)
        lines.append(_row([
            m.name, *(_interval_cell(cells.get(k.name), _decimals(k)) for k in (WER, CER, SIM)),
            _interval_cell(view[0], 2) if view else "—", str(cost.steps),
            _cell(cost.cpu_s, ".1f"), _cell(cost.tokens_per_s, ".1f"),
            _cell(cost.samples_per_s, ".2f"), rival.get(m.name, "—"),
        ]))  # fmt: skip
    if views:
        lines += [
            "",
            "## The reward model's view, paired against the base",
            "",
            "Each method's audio and the base's, both read by that method's reward ASR: "
            f"method − base {WER.name} [95 % paired bootstrap interval]. A gain seen here and "
            "not by the evaluator is reward hacking.",
            "",
            _row(["method", "reward-model WER − base"]),
            _row(["---"] * 2),
            *(_row([name, _interval_cell(diff, 2, signed=True)])
              for name, (_, diff) in views.items()),  # fmt: skip
        ]
    missing = [n for n, c in costs.items() if c.cpu_s is None]
    if not missing:
        points = {r.name: _wer_line(r, synth, table, costs[r.name], seed) for r in runs}
        plot_wer_vs_cpu(points, out_dir / PLOT_FILE)
        lines += [
            "",
            "## Evaluator WER against stage-5 CPU seconds",
            "",
            f"![WER against CPU seconds]({PLOT_FILE})",
            "",
            "Each line: the base (0 s), the checkpoints along the way (every `save_every` of the "
            "method's config, scored like the final model), the final stage-5 model.",
            "",
            _row(["method", "(CPU s, evaluator WER %) along the way"]),
            _row(["---"] * 2),
            *(_row([name, ", ".join(f"({x:.1f}, {iv.estimate:.2f})" for x, iv in line)])
              for name, line in points.items()),  # fmt: skip
        ]
    else:
        lines += ["", f"No CPU-seconds plot: no `cpu_s` logged by {', '.join(missing)} "
                  "(stage 5 ran without `train.budget_cpu_s`)."]  # fmt: skip
    return lines + [""], rival


def _wer_line(
    run: MethodRun, synth: str, table: dict[str, dict[str, Interval]], cost: Cost, seed: int
) -> list[tuple[float, Interval]]:
    """(CPU seconds, evaluator WER) of the base, each scored checkpoint and the final model."""
    line = [(0.0, table["base"][WER.name])]
    for step, directory in run.checkpoints:
        system = load_systems([(f"{run.name}@{step}", directory / synth)])[0]
        wer = summarise(list(system.rows.values()), WER, seed)
        if wer is None:
            raise ValueError(f"{directory / synth}: no WER in its scores")
        line.append((cpu_s_at(run.directory, step), wer))
    return line + [(cost.cpu_s, table[run.name][WER.name])]  # type: ignore[list-item]


def build_comparison(
    runs: list[MethodRun], dset: str, out_dir: Path, seed: int, title: str, command: str
) -> str:
    """REPORT.md in ``out_dir``: the sections above, then the evaluator report of base and
    every method with each method paired against its best rival."""
    if not runs:
        raise ValueError("no --method given")
    out_dir.mkdir(parents=True, exist_ok=True)
    preamble, rival = comparison_sections(runs, dset, out_dir, seed)
    request = ReportRequest(
        title=title,
        systems=[("base", runs[0].base_directory / f"synth/{dset}")]
        + [(r.name, r.directory / f"synth/{dset}") for r in runs],
        baseline="base",
        pairs=list(rival.items()),
        scatter=["wer"],
        seed=seed,
        command=command,
        preamble=preamble,
    )
    return build_report(request, out_dir)
