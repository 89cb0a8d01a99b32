"""tts_rl.sh's method, --family, --tag, --pretrained and --reward_asr_train_set options: what each
run checks before any stage, and what stages 3 and 4 do with given models and sets. Each run here
trains nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fake_corpora import make_data_dir
from recipe_sandbox import make_sandbox, run_recipe

from local_lib.rl.method_spec import known_methods

STAGE_1 = "stage 1: corpus preparation"
STAGE_3 = ("--stage", "3", "--stop-stage", "3")
STAGE_4 = ("--stage", "4", "--stop-stage", "4")


def grpo_sandbox(tmp_path: Path) -> Path:
    return make_sandbox(tmp_path, "libritts/grpo")


def fake_inputs(recipe_dir: Path) -> None:
    """Empty stand-ins for what stages 1-2 write, so that stages 3-4 get past the check of their
    inputs (and then fail on them, or only link given models)."""
    for name in ("data/train/wav.scp", "data/dev/wav.scp", "dump/train/speech_tokens",
                 "dump/dev/speech_tokens", "dump/speech_tokenizer/tokenizer.pt"):  # fmt: skip
        (recipe_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (recipe_dir / name).touch()


def fake_checkpoint(path: Path, text: str) -> Path:
    """A small file that torch.save wrote, as every given model file must be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"name": text}, path)
    return path


def fake_codec_lm_dir(path: Path) -> Path:
    """A directory that passes for a CodecLM model dir (stage 4 only links it)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}\n")
    return path


def test_an_unknown_method_fails_before_any_stage_naming_the_known_ones(tmp_path):
    recipe_dir = grpo_sandbox(tmp_path)
    result = run_recipe(recipe_dir, "--method", "no_such_method")
    assert result.returncode != 0
    assert f"unknown method 'no_such_method'; known: {' '.join(known_methods())}" in result.output
    assert {"easpo", "grpo"} <= set(known_methods())
    assert STAGE_1 not in result.output and not (recipe_dir / "data").exists()


def test_a_method_not_built_yet_is_declared_with_its_family(tmp_path):
    recipe_dir = make_sandbox(tmp_path, "esd/hpro")
    args = ("--method", "not_built", "--family", "codec_lm", "--stage", "5", "--stop-stage", "5")
    result = run_recipe(recipe_dir, *args)
    assert result.returncode != 0
    assert "stage 5 (not_built) is not built yet: no METHOD in local_lib/rl/not_built.py " \
        "(declared with --family codec_lm)" in result.output  # fmt: skip
    assert "none of stages 5..5 is built yet (built: 1 2 3 4 6 7 8)" in result.output


@pytest.mark.parametrize(
    "args, message",
    [(["--family", "codec_lm", "--method", "easpo"],
      "method 'easpo' is of the gradtts family, not codec_lm"),
     (["--family", "vits"], "argument --family: invalid choice: 'vits'"),
     (["--tag", "a/b"], "--tag may hold only letters, digits, '.', '_' and '-', got 'a/b'"),
     (["--train_seeds", "0"], "--train_seeds must be at least 1"),
     (["--train_seeds", "two"], "--train_seeds must be a non-negative integer, got 'two'"),
     (["--method_variants", "long_seed1"],
      "--method_variants long_seed1: a variant name may not end in _seed<N>"),
     (["--pretrained", "tts_base=/no/such"],
      "--pretrained tts_base=/no/such: not a codec LM model directory (no /no/such/config.json"),
     (["--pretrained", "eval_emotion=/dev/null"],
      "NAME one of: reward_ctc eval_asr eval_speaker, or tts_base=DIR"),
     (["--reward_asr_train_set", "a/b"],
      "--reward_asr_train_set may hold only letters, digits, '.', '_' and '-', got 'a/b'")],
)  # fmt: skip
def test_a_bad_option_stops_the_run_before_any_stage(tmp_path, args, message):
    recipe_dir = grpo_sandbox(tmp_path)
    result = run_recipe(recipe_dir, *args)
    assert result.returncode != 0
    assert message in result.output
    assert STAGE_1 not in result.output and not (recipe_dir / "data").exists()


def test_pretrained_tts_base_links_the_tagged_base_instead_of_training(tmp_path):
    recipe_dir = grpo_sandbox(tmp_path)
    base = fake_codec_lm_dir(tmp_path / "elsewhere/exp/tts_base/model")
    args = (*STAGE_4, "--tag", "x", "--pretrained", f"tts_base={base}")
    for _ in range(2):  # the second run finds the link in place
        result = run_recipe(recipe_dir, *args)
        assert result.returncode == 0, result.output
        link = recipe_dir / "exp/tts_base_x/model"
        assert link.is_symlink() and Path(link.readlink()) == base.resolve()
        given = f"stage 4: exp/tts_base_x/model -> {base.resolve()} (given, not trained)"
        assert given in result.output
    assert not (recipe_dir / "exp/tts_base_x/log").exists()
    assert not (recipe_dir / "exp/tts_base").exists()
    fake_inputs(recipe_dir)
    result = run_recipe(recipe_dir, *STAGE_4, "--tag", "x")  # never trains into the given base
    assert result.returncode == 0, result.output
    assert "stage 4: exp/tts_base_x/model links to a given base" in result.output
    assert not (recipe_dir / "exp/tts_base_x/log").exists()


def test_pretrained_tts_base_does_not_replace_a_base_trained_here(tmp_path):
    recipe_dir = grpo_sandbox(tmp_path)
    fake_codec_lm_dir(recipe_dir / "exp/tts_base/model")
    base = fake_codec_lm_dir(tmp_path / "other_base")
    result = run_recipe(recipe_dir, *STAGE_4, "--pretrained", f"tts_base={base}")
    assert result.returncode != 0
    message = f"exp/tts_base/model was trained here; remove it to use {base.resolve()} instead"
    assert message in result.output
    assert not (recipe_dir / "exp/tts_base/model").is_symlink()


def test_pretrained_tts_base_of_the_gradtts_family_is_a_dir_with_model_pt(tmp_path):
    recipe_dir = make_sandbox(tmp_path, "esd/easpo")
    base = tmp_path / "tagged/exp/tts_base"
    base.mkdir(parents=True)
    result = run_recipe(recipe_dir, *STAGE_4, "--pretrained", f"tts_base={base}")
    assert result.returncode != 0
    assert f"--pretrained tts_base={base}: no Grad-TTS base model {base}/model.pt" in result.output
    (base / "model.pt").write_bytes(b"base")
    result = run_recipe(recipe_dir, *STAGE_4, "--pretrained", f"tts_base={base}")
    assert result.returncode == 0, result.output
    assert (recipe_dir / "exp/tts_base/model.pt").readlink() == (base / "model.pt").resolve()


def test_stage_5_names_the_missing_base_of_its_tag(tmp_path):
    recipe_dir = grpo_sandbox(tmp_path)
    fake_codec_lm_dir(recipe_dir / "exp/tts_base/model")  # the untagged base does not count
    fake_inputs(recipe_dir)
    result = run_recipe(recipe_dir, "--stage", "5", "--stop-stage", "5", "--tag", "x")
    assert result.returncode != 0
    assert "stage 5 needs exp/tts_base_x/model (written by stage 4, or --pretrained " \
        "tts_base=DIR)" in result.output  # fmt: skip


def test_stage_3_accepts_a_given_model_that_is_already_in_place(tmp_path):
    recipe_dir = grpo_sandbox(tmp_path)
    fake_inputs(recipe_dir)
    in_place = fake_checkpoint(recipe_dir / "exp/eval_asr/model.pt", "eval_asr")
    content = in_place.read_bytes()
    given = ["eval_asr=exp/eval_asr/model.pt"]
    for name in ("reward_ctc", "eval_speaker"):
        given.append(f"{name}={fake_checkpoint(tmp_path / f'{name}.pt', name)}")
    result = run_recipe(recipe_dir, *STAGE_3, "--pretrained", " ".join(given))
    assert result.returncode == 0, result.output
    assert in_place.read_bytes() == content and not in_place.is_symlink()
    given_log = f"stage 3: exp/eval_asr/model.pt -> {in_place.resolve()} (given, not trained)"
    assert given_log in result.output


def test_stage_3_gives_the_codec_lm_reward_models_the_speech_tokens(tmp_path):
    """The command of each stage-3 job, read from its log: the jobs fail at once (empty data/)."""
    recipe_dir = make_sandbox(tmp_path, "libritts/w3ar")  # reward_asr has its own trainer
    fake_inputs(recipe_dir)
    result = run_recipe(recipe_dir, *STAGE_3, "--evaluators", "eval_asr")
    assert result.returncode != 0
    assert "stage 3 failed, see exp/reward_asr/log/train.log" in result.output
    tokens = (
        "--tokenizer dump/speech_tokenizer/tokenizer.pt "
        "--train-tokens dump/train/speech_tokens --valid-tokens dump/dev/speech_tokens"
    )
    command = (recipe_dir / "exp/reward_asr/log/train.log").read_text().splitlines()[0]
    assert "local_lib.bin.train_reward_asr" in command and tokens in command
    command = (recipe_dir / "exp/eval_asr/log/train.log").read_text().splitlines()[0]
    assert "local_lib.bin.train_evaluator" in command and "--tokenizer" not in command


def test_reward_asr_train_set_trains_only_the_audio_reward_asrs_on_it(tmp_path):
    """The set must exist before any stage; then reward_ctc and reward_asr train on it and the
    evaluator on data/train (each job's command read from its log; the jobs fail at once)."""
    recipe_dir = grpo_sandbox(tmp_path)
    fake_inputs(recipe_dir)
    args = (*STAGE_3, "--reward_models", "reward_ctc reward_asr", "--evaluators", "eval_asr",
            "--reward_asr_train_set", "train_asr")  # fmt: skip
    result = run_recipe(recipe_dir, *args)
    assert result.returncode != 0
    assert "missing inputs, no stage has run:\n  stage 3 needs data/train_asr/wav.scp (written " \
        "by stage 1's local/data.sh; --reward_asr_train_set trains reward_ctc reward_asr on it)" \
        in result.output  # fmt: skip
    assert not (recipe_dir / "exp").exists()
    (recipe_dir / "data/train_asr").mkdir()
    (recipe_dir / "data/train_asr/wav.scp").touch()
    result = run_recipe(recipe_dir, *args)
    assert result.returncode != 0
    for name, tool, train_dir in (("reward_ctc", "train_evaluator", "data/train_asr"),
                                  ("reward_asr", "train_reward_asr", "data/train_asr"),
                                  ("eval_asr", "train_evaluator", "data/train")):  # fmt: skip
        command = (recipe_dir / f"exp/{name}/log/train.log").read_text().splitlines()[0]
        assert f"local_lib.bin.{tool} " in command, name
        assert f" --train-dir {train_dir} --valid-dir data/dev " in command, name


def test_reward_asr_train_set_that_stage_1_does_not_write_stops_the_run_after_it(tmp_path):
    """With stage 1 in the range the set cannot exist beforehand: it is checked once stage 1 ran,
    before stage 2 (here local/data.sh copies small ready-made dirs and writes no train_asr)."""
    recipe_dir = grpo_sandbox(tmp_path)
    for dset in ("train", "dev", "test"):
        make_data_dir(tmp_path / "ready" / dset, tmp_path / "wavs" / dset, count=4)
    (recipe_dir / "local/data.sh").write_text(
        "#!/usr/bin/env bash\nset -eu\nout=${@: -1}\nmkdir -p \"$out\"\n"
        f"cp -r {tmp_path / 'ready'}/. \"$out\"/\n"
    )
    result = run_recipe(recipe_dir, "--stop-stage", "3", "--reward_asr_train_set", "train_asr")
    assert result.returncode != 0
    assert "stage 1 wrote no data/train_asr/wav.scp (--reward_asr_train_set trains reward_ctc on " \
        "it); no later stage has run" in result.output  # fmt: skip
    assert "stage 2:" not in result.output and not (recipe_dir / "dump").exists()
