"""recipe_readme: a recipe README's generated block from real stage-8 reports, prose kept."""

import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from local_lib.bin.recipe_readme import (
    BEGIN_MARKER,
    END_MARKER,
    ReadmeError,
    demote_headings,
    format_wall_time,
    main,
    replace_block,
)
from local_lib.eval.report import ReportRequest, build_report
from local_lib.eval.score_table import write_scores

UTTS = ["spk1_u1", "spk1_u2", "spk2_u3", "spk2_u4"]
PROSE_BEFORE = """# GRPO on mini_libritts

Hand-written analysis: the base reads at 66.01 % WER.

## Results

"""
PROSE_AFTER = """
## Dev studies

| base | dev WER % |
|---|---|
| text-aligned | 71.61 |
"""


def _scores(directory: Path, errors: list[int], sims: list[float]) -> Path:
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
        for u, e, s in zip(UTTS, errors, sims)
    ]
    write_scores(directory / "scores.tsv", rows)
    (directory / "RESULTS.md").write_text(f"# {directory.name}\n")
    return directory


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    """A recipe dir whose exp/ holds what stages 7 and 8 write, made by the stage-8 code itself:
    exp/report (evaluators, with curves, a scatter and an extra figure) and
    exp/report_reward_asr."""
    root = tmp_path_factory.mktemp("recipe")
    exp = root / "exp"
    base = _scores(exp / "tts_base/synth/test", [2, 1, 3, 1], [0.5, 0.6, 0.7, 0.8])
    grpo = _scores(exp / "tts_grpo/synth/test", [0, 0, 1, 0], [0.7, 0.8, 0.9, 1.0])
    metrics = exp / "tts_grpo/metrics.jsonl"
    metrics.write_text(
        "".join(json.dumps({"step": s, "reward/mean": 0.1 * s}) + "\n" for s in range(1, 5))
    )
    contours = exp / "report/emotion_contours_test.png"
    contours.parent.mkdir(parents=True)
    plt.imsave(contours, [[0.0, 1.0], [1.0, 0.0]])
    systems = [("base", base), ("grpo", grpo)]
    command = "python -m local_lib.bin.report --out-dir exp/report ..."
    cwd = os.getcwd()
    os.chdir(root)  # the report names its --figure by the path it was given, as in a recipe
    try:
        build_report(
            ReportRequest(
                title="grpo: test",
                systems=systems,
                baseline="base",
                curves=[("grpo", metrics)],
                scatter=["wer"],
                figures=[Path("exp/report/emotion_contours_test.png")],
                command=command,
            ),
            exp / "report",
        )
    finally:
        os.chdir(cwd)
    reward = [(n, _scores(d / "reward_asr", [3, 2, 3, 2], [0.5] * 4)) for n, d in systems]
    build_report(
        ReportRequest(
            title="grpo: test, scored by the reward ASR",
            systems=reward,
            baseline="base",
            scatter=["wer"],
            command=command,
        ),
        exp / "report_reward_asr",
    )
    return root


def _args(recipe: Path, readme: Path, *extra: str) -> list[str]:
    return [
        "--report", str(recipe / "exp/report/REPORT.md"),
        "--reward-report", str(recipe / "exp/report_reward_asr/REPORT.md"),
        "--readme", str(readme),
        "--command", "./run.sh",
        "--commit", "abc1234",
        "--wall-time", "1181",
        "--machine", "2 CPU cores (test CPU), 8.0 GiB RAM, no GPU",
        "--date", "2026-12-03",
        *extra,
    ]  # fmt: skip


def _block(text: str) -> str:
    return text.split(BEGIN_MARKER, 1)[1].split(END_MARKER, 1)[0]


def _readme_with_markers(recipe: Path) -> Path:
    readme = recipe / "README.md"
    readme.write_text(
        f"{PROSE_BEFORE}{BEGIN_MARKER}\nFilled by the tool after a run.\n"
        f"{END_MARKER}\n{PROSE_AFTER}"
    )
    return readme


def test_markers_replaced_prose_kept_and_idempotent(recipe):
    readme = _readme_with_markers(recipe)
    main(_args(recipe, readme))
    first = readme.read_text()
    figures = {p.name: p.read_bytes() for p in (recipe / "figures").iterdir()}
    assert first.startswith(PROSE_BEFORE + BEGIN_MARKER)
    assert first.endswith(END_MARKER + "\n" + PROSE_AFTER)
    assert first.count(BEGIN_MARKER) == 1 and first.count(END_MARKER) == 1
    block = _block(first)
    assert "Filled by the tool" not in block
    assert (
        "`./run.sh` at commit `abc1234` on 2 CPU cores (test CPU), 8.0 GiB RAM, no GPU; "
        "wall time 19 min 41 s (1181 s); 2026-12-03." in block
    )
    # Both reports, headings nested under the README's "## Results", evaluators first.
    assert "\n### grpo: test\n" in block and "\n#### Systems\n" in block
    assert block.index("### grpo: test\n") < block.index("### grpo: test, scored by the reward")
    assert "reward hacking" in block
    assert "| grpo − base |" in block  # the paired table came through
    assert "# GRPO" not in block.replace("### grpo", "")

    main(_args(recipe, readme))  # a second run changes nothing
    assert readme.read_text() == first
    assert {p.name: p.read_bytes() for p in (recipe / "figures").iterdir()} == figures


def test_figure_paths_point_at_copies_and_other_links_become_paths(recipe):
    readme = _readme_with_markers(recipe)
    main(_args(recipe, readme))
    block = _block(readme.read_text())
    expected = {
        "report_bars.png",
        "report_curves.png",
        "report_scatter_wer.png",
        "report_figures_emotion_contours_test.png",
        "report_reward_asr_bars.png",
        "report_reward_asr_scatter_wer.png",
    }
    assert {p.name for p in (recipe / "figures").iterdir()} == expected
    for name in expected:
        assert f"](figures/{name})" in block
        with Image.open(recipe / "figures" / name) as image:
            assert image.format == "PNG" and image.width <= 800
    assert "](bars.png)" not in block and "](figures/emotion_contours" not in block
    # RESULTS.md lives under exp/ (not committed): named as a path, not linked.
    assert "`exp/tts_base/synth/test/RESULTS.md`" in block
    assert "`exp/tts_grpo/synth/test/reward_asr/RESULTS.md`" in block
    assert "](../" not in block
    assert "grpo (`exp/tts_grpo/metrics.jsonl`)" in block  # absolute path shown from the recipe
    assert str(recipe) not in block


def test_big_figures_are_scaled_down(recipe, tmp_path):
    readme = tmp_path / "r" / "README.md"
    main(_args(recipe, readme, "--max-figure-width", "120"))
    with Image.open(readme.parent / "figures" / "report_bars.png") as image:
        assert image.width == 120
    with Image.open(recipe / "exp/report/bars.png") as original:
        assert original.width > 120  # the report's own copy is untouched


def test_readme_without_markers_gets_the_block_appended(recipe, tmp_path):
    readme = tmp_path / "new" / "README.md"  # neither file nor directory exists
    main(_args(recipe, readme))
    created = readme.read_text()
    assert created.startswith(BEGIN_MARKER) and created.endswith(END_MARKER + "\n")

    prose = tmp_path / "prose" / "README.md"
    prose.parent.mkdir()
    prose.write_text("# A recipe\n\nSome analysis.\n")
    main(_args(recipe, prose))
    once = prose.read_text()
    assert once.startswith("# A recipe\n\nSome analysis.\n\n" + BEGIN_MARKER)
    main(_args(recipe, prose))
    assert prose.read_text() == once


def test_missing_report_is_an_error_naming_it(recipe, tmp_path, capsys):
    readme = _readme_with_markers(recipe)
    before = readme.read_text()
    missing = tmp_path / "exp/report_reward_asr/REPORT.md"
    args = _args(recipe, readme)
    args[args.index("--reward-report") + 1] = str(missing)
    with pytest.raises(SystemExit) as err:
        main(args)
    assert f"report not found: {missing}" in str(err.value)
    assert readme.read_text() == before  # nothing written

    # Checked before the defaults are looked up (no --commit, in a directory without git).
    main_missing = tmp_path / "exp/report/REPORT.md"
    args = [a for a in _args(recipe, tmp_path / "README.md") if a != "abc1234"]
    args.remove("--commit")
    args[args.index("--report") + 1] = str(main_missing)
    with pytest.raises(SystemExit) as err:
        main(args)
    assert f"report not found: {main_missing}" in str(err.value)


def test_missing_figure_is_an_error_naming_it(recipe, tmp_path):
    report = tmp_path / "exp/report/REPORT.md"
    report.parent.mkdir(parents=True)
    report.write_text("# t\n\n![metric bars](bars.png)\n")
    readme = tmp_path / "README.md"
    args = _args(recipe, readme)
    args[args.index("--report") + 1] = str(report)
    with pytest.raises(SystemExit) as err:
        main(args)
    assert str(report) in str(err.value) and "bars.png" in str(err.value)
    assert not readme.exists()


def test_broken_markers_are_an_error():
    block = f"{BEGIN_MARKER}\nnew\n{END_MARKER}\n"
    with pytest.raises(ReadmeError, match="found 1 BEGIN and 0 END"):
        replace_block(f"x\n{BEGIN_MARKER}\nold\n", block, Path("README.md"))
    with pytest.raises(ReadmeError, match="found 2 BEGIN and 1 END"):
        replace_block(f"{BEGIN_MARKER}\n{BEGIN_MARKER}\n{END_MARKER}\n", block, Path("README.md"))
    with pytest.raises(ReadmeError, match="found 1 BEGIN and 1 END"):
        replace_block(f"{END_MARKER}\n{BEGIN_MARKER}\n", block, Path("README.md"))


@pytest.mark.parametrize(
    "given, shown",
    [
        ("1181", "19 min 41 s (1181 s)"),
        ("45", "45 s"),
        ("3725.4", "1 h 2 min 5 s (3725 s)"),
        ("19 min 41 s", "19 min 41 s"),
    ],
)
def test_wall_time(given, shown):
    assert format_wall_time(given) == shown


def test_headings_in_code_fences_are_left_alone():
    text = "# T\n\n## S\n\n```sh\n# a comment\n```\n"
    assert demote_headings(text, 3) == "### T\n\n#### S\n\n```sh\n# a comment\n```"


def test_a_run_in_another_copy_of_the_recipe_is_shown_by_its_exp_paths(recipe, tmp_path):
    readme = tmp_path / "elsewhere" / "README.md"  # not the directory that holds exp/
    main(_args(recipe, readme))
    block = _block(readme.read_text())
    assert "Generated from `exp/report/REPORT.md`, `exp/report_reward_asr/REPORT.md`" in block
    assert "`exp/tts_base/synth/test/RESULTS.md`" in block


def test_machine_parts_without_proc_files(tmp_path):
    from local_lib.bin.recipe_readme import _cpu_model, _memory_gib

    assert _cpu_model(tmp_path / "missing") == "unknown CPU model"
    assert _memory_gib(tmp_path / "missing") is None
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nmodel name\t: Test  CPU 9000\n")
    (tmp_path / "meminfo").write_text("MemTotal:       8388608 kB\nMemFree: 1 kB\n")
    assert _cpu_model(tmp_path / "cpuinfo") == "Test CPU 9000"
    assert _memory_gib(tmp_path / "meminfo") == "8.0 GiB RAM"
    (tmp_path / "meminfo").write_text("MemTotal: lots\n")
    assert _memory_gib(tmp_path / "meminfo") is None
