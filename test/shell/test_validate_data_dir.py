"""utils/validate_data_dir.sh from a recipe dir: exit status and file:line reports."""

from __future__ import annotations

import subprocess
from pathlib import Path

from fake_corpora import make_data_dir, write_tone  # noqa: E402
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


def test_the_tools_find_the_project_python_without_path_sh(tmp_path):
    """With only the system's PATH (no venv, no path.sh sourced) the wrappers still run."""
    recipe = make_recipe_dir(tmp_path / "recipe")
    make_data_dir(recipe / "data/train", tmp_path / "wavs", count=4)
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(tmp_path)}
    for tool, args in [("validate_data_dir.sh", ["data/train"]),
                       ("subset_data_dir.sh", ["--per-spk", "1", "data/train", "data/two"]),
                       ("fix_data_dir.sh", ["data/two"])]:  # fmt: skip
        result = subprocess.run([f"utils/{tool}", *args], cwd=recipe, env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 0, f"{tool}: {result.stderr}"
    assert len((recipe / "data/two/utt2spk").read_text().splitlines()) == 2


def test_a_bare_header_or_a_click_is_too_short(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    data = make_data_dir(recipe / "data/train", tmp_path / "wavs", count=4)
    wavs = [line.split()[1] for line in (data / "wav.scp").read_text().splitlines()]
    write_tone(Path(wavs[0]), seconds=0.0)  # a 44-byte header and no samples
    write_tone(Path(wavs[2]), seconds=300 / 16000)
    assert Path(wavs[0]).stat().st_size == 44
    result = run_in(recipe, "utils/validate_data_dir.sh", "data/train")
    assert result.returncode == 1
    utts = [line.split()[0] for line in (data / "wav.scp").read_text().splitlines()]
    assert (f"data/train/wav.scp:1: {utts[0]}: audio {wavs[0]} has 0 samples (0.000 s), "
            "less than the minimum 0.1 s") in result.stderr  # fmt: skip
    assert f"data/train/wav.scp:3: {utts[2]}: audio {wavs[2]} has 300 samples" in result.stderr
    shorter = run_in(recipe, "utils/validate_data_dir.sh", "--min-dur", "0.01", "data/train")
    assert shorter.returncode == 1 and f"{utts[2]}" not in shorter.stderr


def test_a_speaker_with_one_utterance_fails_where_prompts_need_two(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    data = make_data_dir(recipe / "data/dev", tmp_path / "wavs", count=3)  # spk1 has one
    assert run_in(recipe, "utils/validate_data_dir.sh", "data/dev").returncode == 0
    result = run_in(recipe, "utils/validate_data_dir.sh", "--min-utts-per-spk", "2", "data/dev")
    assert result.returncode == 1
    utt = (data / "spk2utt").read_text().splitlines()[1].split()[1]
    assert (f"data/dev/utt2spk:3: {utt}: speaker spk1 has 1 utterance(s), fewer than 2: "
            "zero-shot synthesis prompts each utterance with another of its speaker") \
        in result.stderr  # fmt: skip
