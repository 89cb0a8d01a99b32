"""The comparison recipe (egs/libritts/compare) end to end, stages 1-8, with the debug configs.

One run of ./run.sh --nj 2 --config_suffix _debug: stages 1-4 once (every method's reward
model), then GRPO, W3AR, DiffRO and DPO from the one base, each stopped by the same
``budget_cpu_s``, scored on the same test set, and one comparison report.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from recipe_sandbox import make_sandbox, run_recipe

from local_lib.models.codec_lm import CodecLM
from local_lib.train.trainer import read_metrics

# Four debug stage-5 runs and their stages 6-8: about four GRPO debug runs' worth of stages 5-8;
# the generous limit only catches a hang on a shared, loaded CPU.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(5400)]
METHODS = ("grpo", "w3ar", "diffro", "dpo")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> tuple[Path, str]:
    recipe_dir = make_sandbox(tmp_path_factory.mktemp("compare"), "libritts/compare")
    result = run_recipe(recipe_dir, "--nj", "2", "--config_suffix", "_debug", timeout=5400)
    print(f"libritts/compare stages 1-8 (debug configs) took {result.seconds:.1f} s")
    assert result.returncode == 0, result.output
    return recipe_dir, result.output


def test_stages_1_to_4_run_once_and_every_method_after(recipe):
    recipe_dir, output = recipe
    assert "finished grpo: stages 1 2 3 4" in output
    for m in METHODS:
        assert f"finished {m} ({m}): stages 4 5 6 7 8" in output
        assert f"stage 5: train_{m} -> exp/tts_{m}_{m} " in output
        base = recipe_dir / f"exp/tts_base_{m}/model"
        assert base.is_symlink() and base.resolve() == (recipe_dir / "exp/tts_base/model").resolve()
    for name in ("reward_ctc", "reward_asr", "token2text", "eval_asr", "eval_speaker"):
        assert (recipe_dir / f"exp/{name}/model.pt").is_file(), name


def test_every_method_stops_at_the_one_budget(recipe):
    recipe_dir, _ = recipe
    base = CodecLM.from_pretrained(recipe_dir / "exp/tts_base/model")
    for m in METHODS:
        out = recipe_dir / f"exp/tts_{m}_{m}"
        command = (out / "log/train.log").read_text().splitlines()[0]
        assert f"--config conf/{m}_compare_debug.yaml" in command, m
        assert "stop: budget_cpu_s 0.5 reached at step" in (out / "train.log").read_text(), m
        last = read_metrics(out / "metrics.jsonl")[-1]
        assert 1 <= last["step"] < 20 and last["cpu_s"] >= 0.5, m
        trained = CodecLM.from_pretrained(out / "model")
        pairs = zip(base.model.parameters(), trained.model.parameters(), strict=True)
        assert any(not torch.equal(p, q) for p, q in pairs), f"{m} left the base unchanged"
        assert (out / "synth/test/scores.tsv").is_file(), m


def test_one_report_compares_them(recipe):
    recipe_dir, _ = recipe
    report = recipe_dir / "exp/report_compare"
    text = (report / "REPORT.md").read_text()
    table = text.split("## One table")[1].split("##")[0]
    for m in ("base", *METHODS):
        assert f"\n| {m} | " in table, m
    assert "## The reward model's view, paired against the base" in text
    assert "## Paired differences against base" in text and "## Other paired differences" in text
    assert (report / "wer_vs_cpu.png").stat().st_size > 0
    # checkpoints along the way (every save_every: 5) are exported, synthesised and scored
    along = sorted((recipe_dir / "exp").glob("tts_base_*_at*"))
    assert along, "no method trained past its first save_every"
    points = text.split("## Evaluator WER against stage-5 CPU seconds")[1].split("##")[0]
    for directory in along:
        assert (directory / "synth/test/scores.tsv").is_file(), directory
        method = directory.name[len("tts_base_"):].split("_at")[0]
        row = next(line for line in points.splitlines() if line.startswith(f"| {method} |"))
        assert row.count("(") >= 3, row  # base, the checkpoint(s), the final model


@pytest.mark.parametrize(
    "args, message",
    [(["--tag", "x"], "--tag is set by this recipe per method"),
     (["--train_seeds", "3"], "--train_seeds: local_lib.bin.compare_methods compares one training "
      "seed per method")],
)  # fmt: skip
def test_options_it_sets_or_cannot_compare_are_refused_before_any_stage(tmp_path, args, message):
    recipe_dir = make_sandbox(tmp_path, "libritts/compare")
    result = run_recipe(recipe_dir, *args)
    assert result.returncode != 0 and message in result.output
    assert not (recipe_dir / "data").exists()
