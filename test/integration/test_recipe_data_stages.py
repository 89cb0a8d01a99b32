"""Stages 1-2 of every recipe on the mini corpora, under both job backends."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from recipe_sandbox import RECIPES, data_dir_bytes, make_sandbox, read_feats, run_recipe

pytestmark = pytest.mark.slow
SETS = ("train", "dev", "test")


@pytest.fixture(scope="session")
def shared_downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of each mini corpus for the whole session: generation is the slow part."""
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="session")
def finished_recipes(tmp_path_factory, shared_downloads) -> dict[str, Path]:
    """Every recipe's stages 1-2 with the local backend and --nj 2, run once per session."""
    done = {}
    for recipe in RECIPES:
        recipe_dir = make_sandbox(tmp_path_factory.mktemp("local"), recipe, shared_downloads)
        result = run_recipe(recipe_dir, "--stage", "1", "--stop-stage", "2", "--nj", "2")
        print(f"{recipe}: stages 1-2 took {result.seconds:.1f} s")
        assert result.returncode == 0, result.output
        done[recipe] = recipe_dir
    return done


def assert_same_features(a: Path, b: Path) -> None:
    feats_a, feats_b = read_feats(a), read_feats(b)
    assert list(feats_a) == list(feats_b)
    for utt, mat in feats_a.items():
        np.testing.assert_array_equal(mat, feats_b[utt], err_msg=utt)


@pytest.mark.parametrize("recipe", RECIPES)
def test_stages_1_2_give_valid_data_and_readable_features(finished_recipes, recipe):
    recipe_dir = finished_recipes[recipe]
    for dset in SETS:
        check = subprocess.run(
            ["utils/validate_data_dir.sh", f"data/{dset}"],
            cwd=recipe_dir,
            capture_output=True,
            text=True,
            env={"PATH": f"{recipe_dir.parents[2] / 'tools/venv/bin'}:/usr/bin:/bin"},
        )
        assert check.returncode == 0, check.stdout + check.stderr
        wav_ids = [line.split()[0] for line in (recipe_dir / f"data/{dset}/wav.scp").open()]
        feats = read_feats(recipe_dir / f"dump/{dset}/feats.scp")
        assert list(feats) == wav_ids
        for mat in feats.values():
            assert mat.ndim == 2 and mat.shape[1] == 80 and mat.shape[0] > 10
            assert np.isfinite(mat).all()


def test_train_dev_test_sentences_are_disjoint(finished_recipes):
    for recipe_dir in finished_recipes.values():
        texts = {}
        for dset in SETS:
            lines = (recipe_dir / f"data/{dset}/text").read_text().splitlines()
            texts[dset] = {line.split(maxsplit=1)[1] for line in lines}
        assert not texts["train"] & texts["test"], recipe_dir
        assert not texts["train"] & texts["dev"], recipe_dir


def test_rerun_of_finished_stages_does_nothing(finished_recipes):
    recipe_dir = finished_recipes["esd/easpo"]
    before = {p: p.stat().st_mtime_ns for p in recipe_dir.glob("dump/*/feats*.ark")}
    result = run_recipe(recipe_dir, "--stage", "1", "--stop-stage", "2")
    assert result.returncode == 0, result.output
    assert result.output.count("skipping") == 1 + len(SETS)
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_interrupted_stage_2_is_finished_by_a_rerun(tmp_path, shared_downloads, finished_recipes):
    recipe_dir = make_sandbox(tmp_path, "esd/easpo", shared_downloads)
    assert run_recipe(recipe_dir, "--stop-stage", "2", "--nj", "2").returncode == 0
    # An interruption leaves no done marker and part of the output.
    (recipe_dir / "dump/dev/.done").unlink()
    (recipe_dir / "dump/dev/feats.scp").unlink()
    for ark in (recipe_dir / "dump/dev").glob("feats.2.*"):
        ark.unlink()
    result = run_recipe(recipe_dir, "--stage", "2", "--stop-stage", "2", "--nj", "2")
    assert result.returncode == 0, result.output
    assert_same_features(
        recipe_dir / "dump/dev/feats.scp", finished_recipes["esd/easpo"] / "dump/dev/feats.scp"
    )


def test_nj_1_and_nj_2_give_the_same_features(tmp_path, shared_downloads, finished_recipes):
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo", shared_downloads)
    result = run_recipe(recipe_dir, "--stop-stage", "2", "--nj", "1")
    assert result.returncode == 0, result.output
    for dset in SETS:
        assert_same_features(
            recipe_dir / f"dump/{dset}/feats.scp",
            finished_recipes["libritts/grpo"] / f"dump/{dset}/feats.scp",
        )


@pytest.mark.slurm
def test_slurm_backend_gives_byte_identical_data_and_features(
    slurm_cluster, tmp_path, shared_downloads, finished_recipes
):
    recipe = "esd/easpo"
    recipe_dir = make_sandbox(tmp_path, recipe, shared_downloads)
    result = run_recipe(recipe_dir, "--stop-stage", "2", "--nj", "2", backend="slurm")
    assert result.returncode == 0, result.output
    local_dir = finished_recipes[recipe]
    for dset in SETS:
        assert data_dir_bytes(recipe_dir / f"data/{dset}") == data_dir_bytes(
            local_dir / f"data/{dset}"
        )
        for job in (1, 2):
            ark = f"dump/{dset}/feats.{job}.ark"
            assert (recipe_dir / ark).read_bytes() == (local_dir / ark).read_bytes(), ark
        assert_same_features(
            recipe_dir / f"dump/{dset}/feats.scp", local_dir / f"dump/{dset}/feats.scp"
        )


def break_one_wav(recipe_dir: Path, dset: str) -> str:
    """Point one utterance of a prepared data dir at a file that is not audio; returns its id."""
    wav_scp = recipe_dir / f"data/{dset}/wav.scp"
    lines = wav_scp.read_text().splitlines()
    utt = lines[-1].split()[0]
    bad = recipe_dir / "not_audio.wav"
    bad.write_text("this is not a wav file\n")
    lines[-1] = f"{utt} {bad}"
    wav_scp.write_text("\n".join(lines) + "\n")
    return utt


@pytest.mark.parametrize("backend", ["local", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_failing_feature_job_stops_run_sh_naming_the_log(
    request, backend, tmp_path, shared_downloads, finished_recipes
):
    if backend == "slurm":
        request.getfixturevalue("slurm_cluster")
    recipe_dir = make_sandbox(tmp_path, "esd/easpo", shared_downloads)
    assert run_recipe(recipe_dir, "--stop-stage", "1").returncode == 0
    utt = break_one_wav(recipe_dir, "dev")
    result = run_recipe(
        recipe_dir, "--stage", "2", "--stop-stage", "2", "--nj", "2", backend=backend
    )
    assert result.returncode != 0
    assert "dump/dev/log/dump_feats." in result.output, result.output
    failed_log = recipe_dir / "dump/dev/log/dump_feats.2.log"
    assert utt in failed_log.read_text()
    assert not (recipe_dir / "dump/dev/.done").exists()
    assert not (recipe_dir / "dump/dev/feats.2.ark").exists()


def test_a_range_of_unbuilt_stages_is_an_error(tmp_path):
    recipe_dir = make_sandbox(tmp_path, "esd/hpro")
    args = ("--method", "not_built", "--family", "codec_lm", "--stage", "5", "--stop-stage", "5")
    result = run_recipe(recipe_dir, *args)
    assert result.returncode != 0
    assert "none of stages 5..5 is built yet" in result.output


@pytest.mark.parametrize("option, value", [("--nj", "two"), ("--stop-stage", "x"), ("--nj", "0")])
def test_a_bad_number_stops_the_run_before_any_stage(tmp_path, option, value):
    recipe_dir = make_sandbox(tmp_path, "esd/hpro")
    result = run_recipe(recipe_dir, option, value)
    assert result.returncode != 0
    assert f"--{option.lstrip('-').replace('-', '_')} must be" in result.output
    assert "stage 1: corpus preparation" not in result.output
    assert not (recipe_dir / "data").exists()


def test_stage_3_takes_given_models_by_path_instead_of_training(tmp_path):
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    given = {}
    for name in ("reward_ctc", "eval_asr", "eval_speaker"):
        given[name] = tmp_path / f"{name}_trained_elsewhere.pt"
        torch.save({"name": name}, given[name])  # a given model must be a whole torch archive
    spec = " ".join(f"{name}={path}" for name, path in given.items())
    # every model is given: no data is needed (no stage 1 or 2 has run)
    result = run_recipe(recipe_dir, "--stage", "3", "--stop-stage", "3", "--pretrained", spec)
    assert result.returncode == 0, result.output
    for name, path in given.items():
        assert (recipe_dir / f"exp/{name}/model.pt").read_bytes() == path.read_bytes()
        assert f"exp/{name}/model.pt -> {path}" in result.output
        assert not (recipe_dir / f"exp/{name}/log/train.log").exists()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("eval_emotion=/dev/null", "NAME one of: reward_ctc eval_asr eval_speaker"),
        ("eval_asr=/no/such/model.pt", "--pretrained eval_asr: no such file: /no/such/model.pt"),
    ],
)
def test_a_bad_pretrained_model_is_named(tmp_path, spec, message):
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    result = run_recipe(recipe_dir, "--stage", "3", "--stop-stage", "3", "--pretrained", spec)
    assert result.returncode != 0
    assert message in result.output


def test_a_variant_judged_by_a_reward_model_not_named_is_refused(tmp_path):
    """emotion_clf is judged by the stage-3 classifier of that name; without it in
    --reward_models stage 5 would quietly judge it by exp/easpm, so the run stops first."""
    recipe_dir = make_sandbox(tmp_path, "esd/easpo")
    result = run_recipe(
        recipe_dir, "--stage", "5", "--stop-stage", "5", "--config_suffix", "_debug",
        "--method_variants", "k2 emotion_clf", "--reward_models", "easpm",
    )  # fmt: skip
    assert result.returncode != 0
    assert "method variant emotion_clf is judged by the stage-3 reward model emotion_clf" in (
        result.output
    )
    assert "--reward_models (easpm) does not name" in result.output
    assert not (recipe_dir / "exp").exists() or not any((recipe_dir / "exp").iterdir())
