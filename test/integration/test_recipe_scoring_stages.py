"""Stages 3, 6 and 7 (evaluators, vocoder resynthesis, scoring) end to end with debug configs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from recipe_sandbox import make_sandbox, run_recipe

pytestmark = pytest.mark.slow


def read_scores(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def scored_recipe(tmp_path_factory) -> tuple[Path, str]:
    # libritts/grpo: its test set is small (40 utterances) and it trains a reward model too.
    recipe_dir = make_sandbox(tmp_path_factory.mktemp("scoring"), "libritts/grpo")
    result = run_recipe(recipe_dir, "--nj", "2", "--config_suffix", "_debug")
    print(f"libritts/grpo stages 1-7 (debug configs) took {result.seconds:.1f} s")
    assert result.returncode == 0, result.output
    return recipe_dir, result.output


def test_unbuilt_stages_are_reported_and_skipped(scored_recipe):
    _, output = scored_recipe
    for n in (4, 5, 8):
        assert f"stage {n} (" in output and "not built yet" in output
    assert "finished grpo: stages 1 2 3 6 7" in output


def test_stage_3_trains_the_reward_model_and_each_evaluator(scored_recipe):
    recipe_dir, _ = scored_recipe
    for name in ("reward_asr", "eval_asr", "eval_speaker"):
        assert (recipe_dir / f"exp/{name}/model.pt").stat().st_size > 0, name
        assert (recipe_dir / f"exp/{name}/.done").exists(), name
        assert "# Ended (code 0)" in (recipe_dir / f"exp/{name}/log/train.log").read_text()


def test_stage_7_scores_natural_and_resynthesised_audio(scored_recipe):
    recipe_dir, _ = scored_recipe
    utts = [line.split()[0] for line in (recipe_dir / "data/test/wav.scp").open()]
    natural = read_scores(recipe_dir / "exp/natural/test/scores.tsv")
    resynth = read_scores(recipe_dir / "exp/resynth/test/scores.tsv")
    assert [row["utt"] for row in natural] == utts
    assert [row["utt"] for row in resynth] == utts
    assert len(list((recipe_dir / "exp/resynth/test/wav").glob("*.wav"))) == len(utts)
    # Stage 6 ran as a JOB array (--nj 2); the shards' lists are merged in order.
    merged = [line.split()[0] for line in (recipe_dir / "exp/resynth/test/wav.scp").open()]
    assert merged == utts
    results = (recipe_dir / "exp/resynth/test/RESULTS.md").read_text()
    assert "| WER (%) |" in results
    assert "Paired difference: this system − natural" in results
    # The resynthesised audio differs from the natural audio, so its prosody distance is not 0.
    assert any(float(row["f0_rmse_hz"]) > 0 for row in resynth)


def test_rerun_of_scoring_stages_skips_trained_models(scored_recipe):
    recipe_dir, _ = scored_recipe
    result = run_recipe(recipe_dir, "--stage", "3", "--stop-stage", "3", "--config_suffix", "_debug")
    assert result.returncode == 0, result.output
    assert result.output.count("stage 3: exp/") == 3
    assert "skipping" in result.output
