"""Per-utterance score files and the RESULTS.md summary built from them.

A score file is a TSV with a header; one row per utterance. Metrics are declared once in
``METRICS`` as ratios of column sums so the summary, the bootstrap and the paired comparison
all agree on how a number is formed.
"""

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from local_lib.atomic_io import write_text_atomic
from local_lib.eval.bootstrap import Interval, bootstrap_interval, paired_bootstrap_interval

COLUMNS = [
    "utt",
    "ref_text",
    "hyp_text",
    "word_errors",
    "words",
    "char_errors",
    "chars",
    "wer",
    "cer",
    "bad_case",
    "spk_sim",
    "emo_label",
    "emo_pred",
    "emo_correct",
    "emo_sim",
    "f0_rmse_hz",
    "energy_rmse_db",
    "attn_purity",
    "attn_monotonicity",
    "open_word_errors",
]


@dataclass(frozen=True)
class Metric:
    """``scale · Σ num / Σ den`` over the utterances where ``num`` is a finite number."""

    name: str
    num: str
    den: str | None = None
    scale: float = 1.0


CORPUS_METRICS = [
    Metric("WER (%)", "word_errors", "words", 100.0),
    Metric("CER (%)", "char_errors", "chars", 100.0),
    Metric("WER, open vocabulary (%)", "open_word_errors", "words", 100.0),
    Metric("bad-case rate, WER > 50 % (%)", "bad_case", None, 100.0),
    Metric("speaker SIM", "spk_sim"),
    Metric("emotion accuracy (%)", "emo_correct", None, 100.0),
    Metric("emotion SIM", "emo_sim"),
    Metric("F0 RMSE after DTW (Hz)", "f0_rmse_hz"),
    Metric("energy RMSE after DTW (dB)", "energy_rmse_db"),
    Metric("attention purity", "attn_purity"),
    Metric("attention monotonicity", "attn_monotonicity"),
]

SEEDTTS_METRICS = [
    Metric("WER (%), mean of per-utterance WER", "wer", None, 100.0),
    Metric("SIM to prompt", "spk_sim"),
    Metric("bad-case rate, WER > 50 % (%)", "bad_case", None, 100.0),
]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def write_scores(path: Path, rows: list[dict]) -> None:
    """Write per-utterance rows (missing columns left empty) as a TSV, atomically."""
    lines = ["\t".join(COLUMNS)]
    for row in rows:
        lines.append("\t".join(_cell(row.get(c)).replace("\t", " ") for c in COLUMNS))
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_scores(path: Path) -> dict[str, dict[str, str]]:
    """Read a score file into ``{utt: {column: text}}``; errors name the file and line."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or header[0] != "utt":
            raise ValueError(f"{path}:1: not a score file (header must start with 'utt')")
        rows: dict[str, dict[str, str]] = {}
        for lineno, fields in enumerate(reader, start=2):
            if len(fields) != len(header):
                raise ValueError(
                    f"{path}:{lineno}: expected {len(header)} fields, got {len(fields)}"
                )
            row = dict(zip(header, fields))
            if row["utt"] in rows:
                raise ValueError(f"{path}:{lineno}: {row['utt']}: duplicate utterance")
            rows[row["utt"]] = row
    return rows


def _number(text) -> float:
    if text is None or text == "":
        return math.nan
    return float(text)


def _columns(rows: list[dict], metric: Metric) -> tuple[list[float], list[float]]:
    nums = [_number(r.get(metric.num)) for r in rows]
    dens = [1.0 if metric.den is None else _number(r.get(metric.den)) for r in rows]
    return nums, dens


def summarise(rows: list[dict], metric: Metric, seed: int = 0) -> Interval | None:
    """Bootstrap interval of ``metric`` over the rows where it is defined; None if none are."""
    pairs = [
        (n, d) for n, d in zip(*_columns(rows, metric)) if math.isfinite(n) and math.isfinite(d)
    ]
    if not pairs:
        return None
    nums, dens = zip(*pairs)
    iv = bootstrap_interval(nums, dens, seed=seed)
    return Interval(iv.estimate * metric.scale, iv.low * metric.scale, iv.high * metric.scale, iv.n)


def compare(
    rows_a: dict[str, dict], rows_b: dict[str, dict], metric: Metric, seed: int = 0
) -> Interval | None:
    """Paired difference A − B of ``metric`` on utterances where both define it."""
    common = [u for u in rows_a if u in rows_b]
    na, da = _columns([rows_a[u] for u in common], metric)
    nb, db = _columns([rows_b[u] for u in common], metric)
    keep = [
        k for k in range(len(common)) if all(math.isfinite(v) for v in (na[k], da[k], nb[k], db[k]))
    ]
    if not keep:
        return None
    iv = paired_bootstrap_interval(
        [na[k] for k in keep],
        [nb[k] for k in keep],
        [da[k] for k in keep],
        [db[k] for k in keep],
        seed=seed,
    )
    return Interval(iv.estimate * metric.scale, iv.low * metric.scale, iv.high * metric.scale, iv.n)


def _fmt(iv: Interval) -> str:
    return f"| {iv.estimate:.3f} | [{iv.low:.3f}, {iv.high:.3f}] | {iv.n} |"


def render_results(
    title: str,
    rows: list[dict],
    metrics: list[Metric],
    extra_lines: list[str] = (),
    comparison: tuple[str, dict[str, dict]] | None = None,
    seed: int = 0,
) -> str:
    """RESULTS.md text: mean and 95 % bootstrap interval per metric, optional paired table."""
    out = [
        f"# {title}",
        "",
        "| metric | value | 95 % bootstrap interval | utterances |",
        "|---|---|---|---|",
    ]
    for metric in metrics:
        iv = summarise(rows, metric, seed)
        if iv is not None:
            out.append(f"| {metric.name} " + _fmt(iv))
    out += ["", *extra_lines] if extra_lines else []
    if comparison is not None:
        other_name, other_rows = comparison
        mine = {r["utt"]: r for r in rows}
        out += [
            "",
            f"## Paired difference: this system − {other_name}",
            "",
            "| metric | difference | 95 % bootstrap interval | utterances |",
            "|---|---|---|---|",
        ]
        for metric in metrics:
            iv = compare(mine, other_rows, metric, seed)
            if iv is not None:
                out.append(f"| {metric.name} " + _fmt(iv))
    out += [
        "",
        f"Intervals: percentile bootstrap over utterances, 1000 resamples, seed {seed}. A metric "
        "with reference units (WER/CER) is corpus-level, errors / reference units; the others "
        "are means over the utterances where they are defined. Text normalisation: "
        "local_lib/eval/text_norm.py.",
        "",
    ]
    return "\n".join(out)
