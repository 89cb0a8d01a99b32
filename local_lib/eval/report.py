"""Stage 8: one REPORT.md comparing scored systems against a baseline, with its figures.

The numbers come from the same ``score_table`` functions that write each system's RESULTS.md
(``summarise`` for a system's value and interval, ``compare`` for the paired difference), so a
report cell and the RESULTS.md it links always agree for the same seed.
"""

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from local_lib.atomic_io import atomic_path, write_text_atomic
from local_lib.eval.bootstrap import Interval
from local_lib.eval.report_inputs import (
    RESULTS_FILE,
    SCORES_FILE,
    Run,
    System,
    check_same_utterances,
    curve_keys,
    curve_points,
    find_system,
    load_runs,
    load_systems,
    numeric_column,
    restrict_to_common,
    seed_mean_system,
)
from local_lib.eval.report_plots import plot_bars, plot_curves, plot_scatter
from local_lib.eval.score_table import CORPUS_METRICS, SEEDTTS_METRICS, Metric, compare, summarise

log = logging.getLogger(__name__)

METRIC_SETS = {"corpus": CORPUS_METRICS, "seedtts": SEEDTTS_METRICS}

# Score-file columns where a smaller number is the better system; every other metric column
# (SIM, emotion accuracy) is better when larger.
LOWER_IS_BETTER = {
    "word_errors",
    "open_word_errors",
    "char_errors",
    "wer",
    "cer",
    "bad_case",
    "f0_rmse_hz",
    "energy_rmse_db",
}

REPORT_FILE = "REPORT.md"
BARS_FILE = "bars.png"
CURVES_FILE = "curves.png"
FIGURES_DIR = "figures"


@dataclass(frozen=True)
class ReportRequest:
    """Everything one report is made from (the CLI's options, already split into pairs)."""

    title: str
    systems: list[tuple[str, Path]]
    baseline: str
    curves: list[tuple[str, Path]] = field(default_factory=list)
    curve_keys: list[str] = field(default_factory=list)
    curve_smooth: int = 1
    scatter: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    seed_means: list[tuple[str, list[str]]] = field(default_factory=list)  # NAME, its members
    figures: list[Path] = field(default_factory=list)
    metric_set: str = "corpus"
    common_utterances: bool = False
    seed: int = 0
    command: str = ""
    preamble: list[str] = field(default_factory=list)  # markdown lines put before the tables


def lower_is_better(column: str) -> bool:
    return column in LOWER_IS_BETTER


def verdict(column: str, diff: Interval) -> str:
    """'better' / 'worse' when the paired interval excludes zero, else '' (no evidence)."""
    if diff.low > 0:
        return "worse" if lower_is_better(column) else "better"
    if diff.high < 0:
        return "better" if lower_is_better(column) else "worse"
    return ""


def system_table(
    systems: list[System], metrics: list[Metric], seed: int
) -> dict[str, dict[str, Interval]]:
    """``{system: {metric name: interval}}``; metrics a system does not define are left out."""
    table: dict[str, dict[str, Interval]] = {}
    for system in systems:
        rows = list(system.rows.values())
        cells = {m.name: summarise(rows, m, seed) for m in metrics}
        table[system.name] = {k: v for k, v in cells.items() if v is not None}
    return table


def paired_table(
    pairs: list[tuple[System, System]], metrics: list[Metric], seed: int
) -> dict[str, dict[str, Interval]]:
    """``{"A − B": {metric name: interval of A − B}}`` for each (A, B), in the order given."""
    table: dict[str, dict[str, Interval]] = {}
    for system, other in pairs:
        cells = {m.name: compare(system.rows, other.rows, m, seed) for m in metrics}
        table[f"{system.name} − {other.name}"] = {k: v for k, v in cells.items() if v is not None}
    return table


def scatter_pairs(
    systems: list[System], baseline: System, column: str
) -> dict[str, tuple[list[float], list[float]]]:
    """Per non-baseline system: (baseline values, system values) on the utterances where both
    hold a number in ``column``, in the baseline's utterance order."""
    base = numeric_column(baseline, column)
    if not base:
        raise ValueError(
            f"--scatter {column}: baseline {baseline.name} "
            f"({baseline.directory / SCORES_FILE}) has no numbers in that column"
        )
    pairs = {}
    for system in systems:
        if system is baseline:
            continue
        mine = numeric_column(system, column)
        utts = [u for u in base if u in mine]
        pairs[system.name] = ([base[u] for u in utts], [mine[u] for u in utts])
    return pairs


def _decimals(metric: Metric) -> int:
    return 2 if metric.scale != 1.0 else 3


def _number(x: float, decimals: int, signed: bool) -> str:
    """Fixed decimals, except a non-zero value that would round to zero (a tiny but real
    difference) is shown in scientific notation rather than as a misleading 0.000."""
    sign = "+" if signed else ""
    text = f"{x:{sign}.{decimals}f}"
    if x != 0 and float(text) == 0:
        text = f"{x:{sign}.1e}"
    return text


def _interval_cell(iv: Interval | None, decimals: int, signed: bool = False) -> str:
    if iv is None:
        return "—"
    est, low, high = (_number(x, decimals, signed) for x in (iv.estimate, iv.low, iv.high))
    return f"{est} [{low}, {high}]"


def _link(target: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(target.resolve(), out_dir.resolve())).as_posix()


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _systems_section(
    systems: list[System],
    metrics: list[Metric],
    table: dict[str, dict[str, Interval]],
    out_dir: Path,
) -> list[str]:
    lines = [
        "## Systems",
        "",
        "Each cell: value [95 % bootstrap interval] over the utterances that define the metric.",
        "",
        _row(["system", "utterances", *(m.name for m in metrics), "details"]),
        _row(["---"] * (len(metrics) + 3)),
    ]
    for system in systems:
        results = system.directory / RESULTS_FILE
        if system.members:
            details = "mean of " + ", ".join(system.members)
        elif results.is_file():
            details = f"[{RESULTS_FILE}]({_link(results, out_dir)})"
        else:
            details = f"[{SCORES_FILE}]({_link(system.directory / SCORES_FILE, out_dir)})"
        cells = [
            _interval_cell(table[system.name].get(m.name), _decimals(m)) for m in metrics
        ]
        lines.append(_row([system.name, str(len(system.rows)), *cells, details]))
    return lines


def _direction_note(metrics: list[Metric]) -> str:
    lower = [m.name for m in metrics if lower_is_better(m.num)]
    higher = [m.name for m in metrics if not lower_is_better(m.num)]
    parts = []
    if lower:
        parts.append("lower is better for " + ", ".join(lower))
    if higher:
        parts.append("higher is better for " + ", ".join(higher))
    return "; ".join(parts)


def _paired_section(
    heading: str, intro: str, metrics: list[Metric], diffs: dict[str, dict[str, Interval]]
) -> list[str]:
    lines = [
        f"## {heading}",
        "",
        f"{intro} [95 % paired bootstrap interval]. **better** / **worse** marks an interval "
        "that excludes zero; an unmarked cell is no evidence of a difference. Direction: "
        f"{_direction_note(metrics)}.",
        "",
        _row(["difference", *(m.name for m in metrics)]),
        _row(["---"] * (len(metrics) + 1)),
    ]
    for label, cells in diffs.items():
        out = []
        for m in metrics:
            iv = cells.get(m.name)
            text = _interval_cell(iv, _decimals(m), signed=True)
            word = verdict(m.num, iv) if iv is not None else ""
            out.append(f"{text} **{word}**" if word else text)
        lines.append(_row([label, *out]))
    return lines


def _curves_section(runs: list[Run], keys: list[str]) -> list[str]:
    lines = [
        "## Training curves",
        "",
        f"![training curves]({CURVES_FILE})",
        "",
        "First → last logged value of each plotted key (— where a run does not log it).",
        "",
        _row(["run", "logged steps", "last step", *keys]),
        _row(["---"] * (len(keys) + 3)),
    ]
    for run in runs:
        cells = []
        for key in keys:
            values = curve_points(run, key)[1]
            cells.append(f"{values[0]:.4g} → {values[-1]:.4g}" if values else "—")
        last = str(run.records[-1]["step"]) if run.records else "—"
        lines.append(_row([f"{run.name} (`{run.path}`)", str(len(run.records)), last, *cells]))
    return lines


def _scatter_section(
    column: str, baseline: str, pairs: dict[str, tuple[list[float], list[float]]], png: str
) -> list[str]:
    better = "below" if lower_is_better(column) else "above"
    lines = [
        f"## Per-utterance {column}: {baseline} vs each system",
        "",
        f"![{column} scatter]({png})",
        "",
        f"Points {better} the diagonal are utterances where the system beats {baseline}.",
        "",
        _row(["system", "utterances", f"better than {baseline}", "worse", "equal"]),
        _row(["---"] * 5),
    ]
    sign = -1.0 if lower_is_better(column) else 1.0
    for name, (xs, ys) in pairs.items():
        gains = [sign * (y - x) for x, y in zip(xs, ys)]
        counts = (sum(g > 0 for g in gains), sum(g < 0 for g in gains), sum(g == 0 for g in gains))
        lines.append(_row([name, str(len(gains)), *map(str, counts)]))
    return lines


def check_figures(figures: list[Path]) -> None:
    """Each extra image must exist and have a file name no other one has (they share a dir)."""
    names: set[str] = set()
    for figure in figures:
        if not figure.is_file():
            raise ValueError(f"--figure {figure}: file not found")
        if figure.name in names:
            raise ValueError(f"--figure {figure}: another figure is also named {figure.name}")
        names.add(figure.name)


def _copy_figures(figures: list[Path], out_dir: Path) -> list[str]:
    """Copy each extra image into ``figures/`` and return its markdown, in the order given."""
    lines = ["## Other figures", ""]
    for figure in figures:
        with atomic_path(out_dir / FIGURES_DIR / figure.name) as tmp:
            shutil.copyfile(figure, tmp)
        lines += [f"![{figure.stem}]({FIGURES_DIR}/{figure.name})", f"(from `{figure}`)", ""]
    return lines


def _utterance_note(systems: list[System], dropped: dict[str, int] | None) -> str:
    n = len(systems[0].rows)
    if dropped is None:
        return f"All systems were scored on the same {n} utterances."
    lost = ", ".join(f"{k} {v}" for k, v in dropped.items())
    return (
        f"--common-utterances: every number below uses the {n} utterances all systems share "
        f"(utterances left out per system: {lost})."
    )


@dataclass(frozen=True)
class _Inputs:
    """The request's inputs after every check, restricted to common utterances if asked."""

    systems: list[System]
    baseline: System
    dropped: dict[str, int] | None
    runs: list[Run]
    keys: list[str]
    scatter: dict[str, dict[str, tuple[list[float], list[float]]]]


def _checked_inputs(req: ReportRequest) -> _Inputs:
    """Read and check everything before any figure is drawn, so a bad option fails fast and
    leaves the previous report untouched."""
    if req.curve_smooth < 1:
        raise ValueError(f"--curve-smooth must be >= 1, got {req.curve_smooth}")
    if req.metric_set not in METRIC_SETS:
        raise ValueError(f"unknown metric set {req.metric_set!r}; known: {sorted(METRIC_SETS)}")
    systems = load_systems(req.systems)
    for name, member_names in req.seed_means:
        if any(s.name == name for s in systems):
            raise ValueError(f"--seed-mean {name}: the name is also given to a --system")
        members = [find_system(systems, m, "--seed-mean") for m in member_names]
        # the mean stands right after its last member
        systems.insert(max(systems.index(m) for m in members) + 1, seed_mean_system(name, members))
    baseline = find_system(systems, req.baseline, "--baseline")
    for first, second in req.pairs:
        find_system(systems, first, "--pair")
        find_system(systems, second, "--pair")
    dropped = None
    if req.common_utterances:
        systems, dropped = restrict_to_common(systems)
        baseline = find_system(systems, req.baseline, "--baseline")
    else:
        check_same_utterances(systems, baseline)
    runs = load_runs(req.curves)
    keys = curve_keys(runs, req.curve_keys) if runs else []
    scatter = {col: scatter_pairs(systems, baseline, col) for col in dict.fromkeys(req.scatter)}
    check_figures(req.figures)
    return _Inputs(systems, baseline, dropped, runs, keys, scatter)


def _takes_note(systems: list[System]) -> str:
    several = [f"{s.name} ({s.takes})" for s in systems if s.takes > 1]
    if not several:
        return ""
    return (
        " Each utterance's row of these systems is the mean of its takes (how many in "
        f"brackets; stage 6 `--synth_samples`): {', '.join(several)}."
    )


def _seeds_note(systems: list[System]) -> str:
    means = [s.name for s in systems if s.members]
    if not means:
        return ""
    return (
        f" {', '.join(means)}: each utterance's numbers averaged over the same method trained "
        "with different seeds (the systems in its details cell); its interval is over "
        "utterances, so training noise shows in how far apart its members' rows are."
    )


def _method_note(metrics: list[Metric], seed: int, systems: list[System]) -> list[str]:
    corpus = [m.name for m in metrics if m.den is not None]
    level = (
        f"{', '.join(corpus)}: corpus-level (errors / reference units); the others: "
        if corpus
        else ""
    )
    return [
        "## How these numbers are made",
        "",
        f"Percentile bootstrap over utterances, 1000 resamples, seed {seed} (the same "
        f"functions as each system's RESULTS.md). {level}means over the utterances where the "
        "metric is defined. Set-level numbers such as speaker-verification EER are in each "
        "system's RESULTS.md." + _takes_note(systems) + _seeds_note(systems),
    ]


def build_report(req: ReportRequest, out_dir: Path) -> str:
    """Check the inputs, write the figures and REPORT.md into ``out_dir``; return the text."""
    inp = _checked_inputs(req)
    systems, baseline = inp.systems, inp.baseline
    table = system_table(systems, METRIC_SETS[req.metric_set], req.seed)
    metrics = [m for m in METRIC_SETS[req.metric_set] if any(m.name in t for t in table.values())]
    if not metrics:
        raise ValueError("no metric is defined by any system's scores.tsv (empty score columns)")
    log.info("report: %d systems, %d metrics", len(systems), len(metrics))
    diffs = paired_table([(s, baseline) for s in systems if s is not baseline], metrics, req.seed)
    by_name = {s.name: s for s in systems}
    extra_diffs = paired_table([(by_name[a], by_name[b]) for a, b in req.pairs], metrics, req.seed)

    note = _utterance_note(systems, inp.dropped)
    lines = [f"# {req.title}", "", *req.preamble, f"Baseline: **{baseline.name}**. {note}", ""]
    lines += _systems_section(systems, metrics, table, out_dir) + [""]
    if diffs:
        intro = f"Each cell: system − {baseline.name} on the same utterances"
        heading = f"Paired differences against {baseline.name}"
        lines += _paired_section(heading, intro, metrics, diffs) + [""]
    if extra_diffs:
        intro = "Each cell: first − second system (--pair) on the same utterances"
        lines += _paired_section("Other paired differences", intro, metrics, extra_diffs) + [""]
    plot_bars([m.name for m in metrics], [s.name for s in systems], table, out_dir / BARS_FILE)
    lines += ["## Metrics with intervals", "", f"![metric bars]({BARS_FILE})", ""]
    if inp.runs and inp.keys:
        plot_curves(inp.runs, inp.keys, out_dir / CURVES_FILE, req.curve_smooth)
        lines += _curves_section(inp.runs, inp.keys) + [""]
    for column, column_pairs in inp.scatter.items():
        if column_pairs:
            png = f"scatter_{column}.png"
            plot_scatter(column, baseline.name, column_pairs, out_dir / png)
            lines += _scatter_section(column, baseline.name, column_pairs, png) + [""]
    if req.figures:
        lines += _copy_figures(req.figures, out_dir)
    lines += _method_note(metrics, req.seed, systems)
    lines += ["", "## Command", "", "```sh", req.command, "```", ""]
    text = "\n".join(lines)
    write_text_atomic(out_dir / REPORT_FILE, text)
    return text
