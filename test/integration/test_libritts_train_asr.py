"""The LibriTTS recipes' data/train_asr (the reward ASR's larger set) from a real corpus root:
train-clean-360 with train-clean-100 when the root has it, absent (and said so) otherwise."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from fake_corpora import make_fake_libritts
from recipe_sandbox import REPO_ROOT, make_sandbox

from local_lib.data.kaldi_dir import read_kv, validate_data_dir

LIBRITTS_RECIPES = ("libritts/grpo", "libritts/w3ar", "libritts/compare")


def run_data_sh(recipe_dir: Path, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["local/data.sh", "data"], cwd=recipe_dir, env=dict(os.environ, LIBRITTS=str(root)),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_libritts_recipes_share_one_data_sh_and_db_sh():
    for name in ("local/data.sh", "db.sh"):
        files = {(REPO_ROOT / "egs" / r / name).read_bytes() for r in LIBRITTS_RECIPES}
        assert len(files) == 1, name


def test_a_root_with_train_clean_360_gives_train_asr_with_both_train_subsets(tmp_path):
    subsets = ("train-clean-100", "train-clean-360", "dev-clean", "test-clean")
    root = make_fake_libritts(tmp_path / "LibriTTS", subsets=subsets)
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    result = run_data_sh(recipe_dir, root)
    assert result.returncode == 0, result.stdout + result.stderr
    train_asr = recipe_dir / "data/train_asr"
    assert validate_data_dir(train_asr) == []
    assert set(read_kv(train_asr / "utt2spk").values()) == {"19", "198", "20", "199"}
    assert set(read_kv(recipe_dir / "data/train/utt2spk").values()) == {"19", "198"}


def test_a_root_without_train_clean_360_has_no_train_asr_and_says_so(tmp_path):
    root = make_fake_libritts(tmp_path / "LibriTTS")
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    (recipe_dir / "data/train_asr").mkdir(parents=True)  # left by a run on another root
    result = run_data_sh(recipe_dir, root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"no data/train_asr: {root} has no train-clean-360" in result.stdout
    assert not (recipe_dir / "data/train_asr").exists()
    assert validate_data_dir(recipe_dir / "data/train") == []


@pytest.mark.parametrize("recipe", LIBRITTS_RECIPES)
def test_db_sh_names_the_shared_mini_asr_dir_without_making_it_a_corpus_root(recipe):
    """An upper-case NAME= in db.sh is a corpus root (tts_rl.sh); mini_asr_dir must not be one."""
    lines = (REPO_ROOT / "egs" / recipe / "db.sh").read_text().splitlines()
    assert "mini_asr_dir=" in lines and "LIBRITTS=" in lines
