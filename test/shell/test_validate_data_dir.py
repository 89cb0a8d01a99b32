"""utils/validate_data_dir.sh from a recipe dir: exit status and file:line reports."""

from __future__ import annotations

from pathlib import Path

from fake_corpora import make_data_dir  # noqa: E402
from recipe_dir import make_recipe_dir, run_in  # noqa: E402


def test_valid_dir_exits_0_with_a_summary(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    make_data_dir(recipe / "data/train", tmp_path / "wavs", count=4)
    result = run_in(recipe, "utils/validate_data_dir.sh", "data/train")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "validate_data_dir: data/train OK: 4 utterances, 2 speakers, extra files: none, "
        "audio checked"
    )


def test_broken_dir_lists_every_problem_and_exits_1(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    data = make_data_dir(recipe / "data/train", tmp_path / "wavs", count=4)
    text = (data / "text").read_text().splitlines()
    utts = [line.split()[0] for line in text]
    text[1] = utts[1]  # empty transcript
    (data / "text").write_text("\n".join(text) + "\n")
    wav = (data / "wav.scp").read_text().splitlines()[3].split()[1]
    Path(wav).unlink()
    result = run_in(recipe, "utils/validate_data_dir.sh", "data/train")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert f"data/train/text:2: {utts[1]}: empty transcript" in lines
    assert f"data/train/wav.scp:4: {utts[3]}: wav file does not exist: {wav}" in lines
    assert lines[-1] == "validate_data_dir: data/train: 2 problem(s)"
    no_audio = run_in(recipe, "utils/validate_data_dir.sh", "--no-audio", "data/train")
    assert no_audio.returncode == 1 and "wav file" not in no_audio.stderr


def test_missing_dir_is_an_error(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    result = run_in(recipe, "utils/validate_data_dir.sh", "data/nothing")
    assert result.returncode == 1 and "data dir does not exist" in result.stderr
