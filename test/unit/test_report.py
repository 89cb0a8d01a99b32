"""Stage-8 report: hand-checked table numbers, paired-difference wording, plots, input errors."""

import json
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import pytest

from local_lib.bin.report import main as report_main
from local_lib.eval.bootstrap import Interval
from local_lib.eval.report import ReportRequest, build_report, paired_table, system_table, verdict
from local_lib.eval.report_inputs import load_systems
from local_lib.eval.report_plots import moving_average
from local_lib.eval.score_table import CORPUS_METRICS, write_scores

UTTS = ["u1", "u2", "u3", "u4"]
WER, SIM = "WER (%)", "speaker SIM"

# Four utterances of ten reference words each.
# base: 7 word errors -> WER 17.5 %; SIM mean 0.65.
# good: 1 error (every utterance improves by 1 or 2 words) -> 2.5 %; SIM + 0.2 on each.
# mixed: 7 errors (+1, -1, +1, -1 per utterance) -> 17.5 %; SIM lower by 0.1 or 0.2 on each.
SYSTEMS = {
    "base": ([2, 1, 3, 1], [0.5, 0.6, 0.7, 0.8]),
    "good": ([0, 0, 1, 0], [0.7, 0.8, 0.9, 1.0]),
    "mixed": ([3, 0, 4, 0], [0.4, 0.4, 0.6, 0.6]),
}


def _write_system(directory: Path, errors: list[int], sims: list[float], utts=UTTS) -> Path:
    rows = [
        {
            "utt": u,
            "ref_text": "one two three four five six seven eight nine ten",
            "word_errors": e,
            "words": 10,
            "wer": e / 10,
            "bad_case": int(e > 5),
            "spk_sim": s,
        }
        for u, e, s in zip(utts, errors, sims)
    ]
    write_scores(directory / "scores.tsv", rows)
    return directory


@pytest.fixture()
def systems(tmp_path: Path) -> dict[str, Path]:
    return {name: _write_system(tmp_path / name, *cols) for name, cols in SYSTEMS.items()}


def _request(systems: dict[str, Path], **kwargs) -> ReportRequest:
    return ReportRequest(
        title="test report",
        systems=list(systems.items()),
        baseline="base",
        command="python -m local_lib.bin.report ...",
        **kwargs,
    )


def _is_png(path: Path) -> bool:
    with path.open("rb") as f:
        signature = f.read(8)
    image = matplotlib.image.imread(path)
    return signature == b"\x89PNG\r\n\x1a\n" and image.shape[0] > 50 and image.shape[1] > 50


def _table_row(text: str, heading: str, system: str) -> list[str]:
    """The cells of ``system``'s row in the table under ``## heading``."""
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        if line.startswith(f"| {system} |"):
            return [c.strip() for c in line.strip("|").split("|")]
    raise AssertionError(f"no row {system} under {heading}")


def test_table_means_and_paired_differences_by_hand(systems):
    loaded = load_systems(list(systems.items()))
    table = system_table(loaded, CORPUS_METRICS, seed=0)
    assert table["base"][WER].estimate == pytest.approx(17.5)
    assert table["good"][WER].estimate == pytest.approx(2.5)
    assert table["mixed"][WER].estimate == pytest.approx(17.5)
    assert table["base"][SIM].estimate == pytest.approx(0.65)
    assert table["base"][WER].n == 4
    assert "emotion SIM" not in table["base"]  # empty column: metric absent, not zero

    base, good, mixed = loaded
    diffs = paired_table([(good, base), (mixed, base)], CORPUS_METRICS, seed=0)
    assert list(diffs) == ["good − base", "mixed − base"]
    diffs = {label.split(" − ")[0]: cells for label, cells in diffs.items()}
    good_wer = diffs["good"][WER]
    # Every utterance loses 1 or 2 of its 10 errors, so any resample lies in [-20, -10] %.
    assert good_wer.estimate == pytest.approx(-15.0)
    assert -20.0 - 1e-9 <= good_wer.low <= good_wer.high <= -10.0 + 1e-9
    assert diffs["good"][SIM].estimate == pytest.approx(0.2)
    mixed_wer = diffs["mixed"][WER]
    assert mixed_wer.estimate == pytest.approx(0.0)
    assert mixed_wer.low < 0 < mixed_wer.high
    assert diffs["mixed"][SIM].estimate == pytest.approx(-0.15)


@pytest.mark.parametrize(
    "column, low, high, expected",
    [
        ("word_errors", -3.0, -1.0, "better"),  # fewer errors
        ("word_errors", 1.0, 3.0, "worse"),
        ("spk_sim", 0.1, 0.3, "better"),  # more similar
        ("spk_sim", -0.3, -0.1, "worse"),
        ("f0_rmse_hz", 2.0, 5.0, "worse"),
        ("wer", -1.0, 1.0, ""),  # interval holds zero: no claim
    ],
)
def test_verdict_knows_which_way_is_better(column, low, high, expected):
    assert verdict(column, Interval((low + high) / 2, low, high, 10)) == expected


def test_report_markdown_marks_intervals_and_links(systems, tmp_path):
    (systems["base"] / "RESULTS.md").write_text("# base\n")
    out = tmp_path / "exp" / "report"
    text = build_report(_request(systems), out)
    assert (out / "REPORT.md").read_text() == text
    assert "All systems were scored on the same 4 utterances." in text

    base = _table_row(text, "Systems", "base")
    header = _table_row(text, "Systems", "system")
    assert base[header.index(WER)].startswith("17.50 [")
    assert base[header.index(SIM)].startswith("0.650 [")
    assert "emotion SIM" not in header
    assert base[-1] == "[RESULTS.md](../../base/RESULTS.md)"
    # No RESULTS.md beside the scores: the link falls back to scores.tsv.
    assert _table_row(text, "Systems", "good")[-1] == "[scores.tsv](../../good/scores.tsv)"

    paired_header = _table_row(text, "Paired differences against base", "difference")
    good = _table_row(text, "Paired differences against base", "good − base")
    mixed = _table_row(text, "Paired differences against base", "mixed − base")
    assert good[paired_header.index(WER)].startswith("-15.00 [")
    assert good[paired_header.index(WER)].endswith("**better**")
    assert good[paired_header.index(SIM)] == "+0.200 [+0.200, +0.200] **better**"
    assert "**" not in mixed[paired_header.index(WER)]
    assert mixed[paired_header.index(SIM)].endswith("**worse**")
    assert "```sh\npython -m local_lib.bin.report ...\n```" in text
    assert _is_png(out / "bars.png")


def test_pair_reports_an_ablation_against_its_full_method(systems, tmp_path):
    text = build_report(_request(systems, pairs=[("mixed", "good")]), tmp_path / "report")
    header = _table_row(text, "Other paired differences", "difference")
    row = _table_row(text, "Other paired differences", "mixed − good")
    # mixed 17.5 % vs good 2.5 %; per utterance +3, 0, +3, 0 errors of 10: all resamples >= 0.
    assert row[header.index(WER)].startswith("+15.00 [")
    # SIM: mixed - good = -0.3, -0.4, -0.3, -0.4 on the four utterances.
    assert row[header.index(SIM)].startswith("-0.350 [")
    assert row[header.index(SIM)].endswith("**worse**")


def test_scatter_counts_and_png(systems, tmp_path):
    out = tmp_path / "report"
    text = build_report(_request(systems, scatter=["wer", "spk_sim"]), out)
    # wer: good improves all 4 utterances; mixed improves u2, u4 and worsens u1, u3.
    assert _table_row(text, "Per-utterance wer", "good") == ["good", "4", "4", "0", "0"]
    assert _table_row(text, "Per-utterance wer", "mixed") == ["mixed", "4", "2", "2", "0"]
    assert _table_row(text, "Per-utterance spk_sim", "mixed") == ["mixed", "4", "0", "4", "0"]
    assert "Points below the diagonal" in text.split("## Per-utterance wer", 1)[1]
    assert "Points above the diagonal" in text.split("## Per-utterance spk_sim", 1)[1]
    assert _is_png(out / "scatter_wer.png") and _is_png(out / "scatter_spk_sim.png")


def _write_metrics(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_curves_from_metrics_jsonl(systems, tmp_path):
    grpo = _write_metrics(
        tmp_path / "grpo.jsonl",
        [
            {"step": 1, "loss": 2.0, "kl": 0.0, "time/update": 1.0},
            {"step": 2, "loss": 9.0, "kl": 0.5, "time/update": 1.0},
            {"step": 2, "loss": 1.5, "kl": 0.25, "time/update": 1.0},  # resumed: last wins
            {"step": 3, "loss": 1.0, "kl": 0.125, "time/update": 1.0},
        ],
    )
    other = _write_metrics(tmp_path / "other.jsonl", [{"step": 1, "loss": 3.0}])
    out = tmp_path / "report"
    runs = [("grpo", grpo), ("other", other)]
    text = build_report(_request(systems, curves=runs), out)
    assert _is_png(out / "curves.png")
    header = _table_row(text, "Training curves", "run")
    assert header[3:] == ["loss", "kl"]  # default keys: all but step and time/*
    row = _table_row(text, "Training curves", f"grpo (`{grpo}`)")
    assert row[1:] == ["3", "3", "2 → 1", "0 → 0.125"]
    other_row = _table_row(text, "Training curves", f"other (`{other}`)")
    assert other_row[1:] == ["1", "1", "3 → 3", "—"]

    chosen = build_report(_request(systems, curves=runs, curve_keys=["kl"], curve_smooth=2), out)
    assert _table_row(chosen, "Training curves", "run")[3:] == ["kl"]
    assert _is_png(out / "curves.png")


def test_moving_average_by_hand():
    assert moving_average([1.0, 2.0, 3.0, 4.0, 6.0], 2) == [1.0, 1.5, 2.5, 3.5, 5.0]
    assert moving_average([1.0, 2.0, 3.0, 4.0, 6.0], 3) == [1.0, 1.5, 2.0, 3.0, 13.0 / 3.0]
    assert moving_average([4.0, 2.0], 1) == [4.0, 2.0]


def test_common_utterances_restricts_every_number(tmp_path):
    base = _write_system(tmp_path / "base", [2, 1, 3, 1], [0.5, 0.6, 0.7, 0.8])
    # 'short' lacks u4 and has an extra u5; shared: u1, u2, u3 (base WER there 6/30 = 20 %).
    short = _write_system(
        tmp_path / "short", [0, 0, 1, 9], [0.5, 0.5, 0.5, 0.5], utts=["u1", "u2", "u3", "u5"]
    )
    req = ReportRequest("t", [("base", base), ("short", short)], "base")
    with pytest.raises(ValueError, match=r"system short .* lacks utterance u4 .*--common"):
        build_report(req, tmp_path / "r1")
    req = ReportRequest("t", [("base", base), ("short", short)], "base", common_utterances=True)
    text = build_report(req, tmp_path / "r2")
    assert "the 3 utterances all systems share" in text
    assert "base 1, short 1" in text
    base_row = _table_row(text, "Systems", "base")
    assert base_row[1] == "3" and base_row[2].startswith("20.00 [")
    # short on u1-u3: 1 error / 30 words = 3.33 %, so 3.33 - 20.00 = -16.67.
    assert _table_row(text, "Paired differences against base", "short − base")[1].startswith(
        "-16.67 ["
    )


def test_seedtts_metric_set_averages_per_utterance_wer(tmp_path):
    rows = [
        {"utt": "a", "word_errors": 1, "words": 2, "wer": 0.5},
        {"utt": "b", "word_errors": 0, "words": 10, "wer": 0.0},
    ]
    write_scores(tmp_path / "sys" / "scores.tsv", rows)
    systems = [("sys", tmp_path / "sys")]
    corpus = build_report(ReportRequest("t", systems, "sys"), tmp_path / "r1")
    seedtts_req = ReportRequest("t", systems, "sys", metric_set="seedtts")
    seedtts = build_report(seedtts_req, tmp_path / "r2")
    assert _table_row(corpus, "Systems", "sys")[2].startswith("8.33 [")  # 1 error / 12 words
    assert _table_row(seedtts, "Systems", "sys")[2].startswith("25.00 [")  # mean of 50 % and 0 %
    assert "Paired differences" not in corpus  # the baseline alone has nothing to pair with
    assert "WER (%): corpus-level" in corpus
    assert "corpus-level" not in seedtts


def test_extra_figures_are_copied_and_linked(systems, tmp_path):
    figure = tmp_path / "elsewhere" / "attention.png"
    figure.parent.mkdir()
    plt.imsave(figure, [[0.0, 1.0], [1.0, 0.0]])
    out = tmp_path / "report"
    text = build_report(_request(systems, figures=[figure]), out)
    assert (out / "figures" / "attention.png").read_bytes() == figure.read_bytes()
    assert "![attention](figures/attention.png)" in text


def _cli_error(argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        report_main(argv)
    return str(info.value)


def test_cli_errors_name_what_is_wrong(systems, tmp_path, capsys):
    out = ["--out-dir", str(tmp_path / "r"), "--title", "t"]
    both = ["--system", f"base={systems['base']}", f"good={systems['good']}"]

    missing = tmp_path / "nowhere"
    msg = _cli_error(out + both + [f"nope={missing}", "--baseline", "base"])
    assert f"--system nope={missing}" in msg and "scores.tsv not found" in msg

    assert "may not hold '|'" in _cli_error(out + ["--system", "a|b=x", "--baseline", "a|b"])
    assert "--system 'base': expected NAME=PATH" in _cli_error(
        out + ["--system", "base", "--baseline", "base"]
    )
    assert "--curves '=x.jsonl': expected NAME=PATH" in _cli_error(
        out + both + ["--baseline", "base", "--curves", "=x.jsonl"]
    )
    msg = _cli_error(out + both + ["--baseline", "grpo"])
    assert "--baseline 'grpo' is not one of the --system names (base, good)" in msg
    msg = _cli_error(out + both + ["--baseline", "base", "--pair", "good:grpo"])
    assert "--pair 'grpo' is not one of the --system names" in msg
    assert "--pair 'good-base': expected SYSTEM:OTHER" in _cli_error(
        out + both + ["--baseline", "base", "--pair", "good-base"]
    )
    msg = _cli_error(out + both + ["--baseline", "base", "--scatter", "wer_typo"])
    assert "unknown metric column 'wer_typo'" in msg and "scores.tsv" in msg
    curves = _write_metrics(tmp_path / "m.jsonl", [{"step": 1, "loss": 1.0}])
    msg = _cli_error(
        out + both + ["--baseline", "base", "--curves", f"a={curves}", "--curve-keys", "kl"]
    )
    assert "--curve-keys: unknown metric 'kl'" in msg and str(curves) in msg
    assert "--curve-smooth must be >= 1" in _cli_error(
        out + both + ["--baseline", "base", "--curves", f"a={curves}", "--curve-smooth", "0"]
    )
    msg = _cli_error(out + both + ["--baseline", "base", "--figure", str(tmp_path / "x.png")])
    assert "--figure" in msg and "file not found" in msg
    assert "given twice" in _cli_error(
        out + both + [f"base={systems['mixed']}", "--baseline", "base"]
    )
    assert not (tmp_path / "r" / "REPORT.md").exists()  # nothing half-made on failure


def test_cli_writes_the_report_with_its_command_line(systems, tmp_path):
    out = tmp_path / "r"
    argv = [
        "--out-dir", str(out), "--title", "GRPO vs base",
        "--system", f"base={systems['base']}", "--system", f"grpo={systems['good']}",
        "--baseline", "base", "--scatter", "wer",
    ]  # fmt: skip
    report_main(argv)
    text = (out / "REPORT.md").read_text()
    assert text.startswith("# GRPO vs base\n")
    assert "python -m local_lib.bin.report --out-dir" in text
    assert f"--system grpo={systems['good']} --baseline base --scatter wer\n" in text
    assert _is_png(out / "scatter_wer.png")


def test_systems_with_several_takes_are_named_in_the_method_note(systems, tmp_path):
    text = build_report(_request(systems), tmp_path / "one")
    assert "mean of its takes" not in text
    takes = [f"{u}{t}" for u in UTTS for t in ("", "#1", "#2")]
    _write_system(tmp_path / "takes", [0] * 12, [0.5] * 12, utts=takes)
    (tmp_path / "takes" / "scores.tsv").rename(systems["good"] / "scores_takes.tsv")
    text = build_report(_request(systems), tmp_path / "three")
    note = "is the mean of its takes (how many in brackets; stage 6 `--synth_samples`): good (3)."
    assert note in text
    assert [s.takes for s in load_systems(list(systems.items()))] == [1, 3, 1]


def test_seed_mean_averages_each_utterance_over_its_members_by_hand(systems, tmp_path):
    # good and mixed as two seeds of one method: errors (0+3)/2, (0+0)/2, (1+4)/2, (0+0)/2 =
    # 1.5, 0, 2.5, 0 -> 4 of 40 words, 10 % WER (the mean of 2.5 % and 17.5 %), 3 fewer errors
    # than base's 7 (-7.5 points); SIM (0.7+0.4)/2 ... -> 0.55, 0.6, 0.75, 0.8, mean 0.675.
    req = _request(systems, seed_means=[("method_mean", ["good", "mixed"])])
    text = build_report(req, tmp_path / "r")
    row = _table_row(text, "Systems", "method_mean")
    assert row[2].startswith("10.00 [") and row[-1] == "mean of good, mixed"
    systems_rows = text.split("## Systems", 1)[1].split("\n## ", 1)[0]
    assert systems_rows.index("| mixed |") < systems_rows.index("| method_mean |")
    diff = _table_row(text, "Paired differences against base", "method_mean − base")
    assert diff[1].startswith("-7.50 [")
    assert len([c for c in diff if c.startswith("+0.025 [")]) == 1  # speaker SIM
    assert "method_mean: each utterance's numbers averaged over the same method" in text


def test_seed_mean_errors_name_what_is_wrong(systems, tmp_path):
    out = ["--out-dir", str(tmp_path / "r"), "--title", "t", "--baseline", "base"]
    three = ["--system", *(f"{k}={v}" for k, v in systems.items())]
    msg = _cli_error(out + three + ["--seed-mean", "m=good"])
    assert "--seed-mean 'm=good': expected NAME=SYSTEM,SYSTEM[,...]" in msg
    assert "named twice" in _cli_error(out + three + ["--seed-mean", "m=good,good"])
    msg = _cli_error(out + three + ["--seed-mean", "m=good,grpo"])
    assert "--seed-mean 'grpo' is not one of the --system names" in msg
    msg = _cli_error(out + three + ["--seed-mean", "good=base,mixed"])
    assert "--seed-mean good: the name is also given to a --system" in msg
    _write_system(tmp_path / "short", [0, 0, 0], [0.5] * 3, utts=UTTS[:3])
    short = [f"short={tmp_path / 'short'}", "--common-utterances", "--seed-mean", "m=good,short"]
    msg = _cli_error(out + three + short)
    assert "--seed-mean m: good and short are not scored on the same utterances" in msg
    assert "(1 differ, e.g. u4)" in msg
