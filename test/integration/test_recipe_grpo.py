"""The GRPO recipe (egs/libritts/grpo) end to end, stages 1-8, with the debug configs.

One run of ./run.sh --nj 2 --config_suffix _debug --train_seeds 2 (CI budget: 5 minutes on two
idle cores; the second training seed adds the system grpo_seed1); the tests then check what
each stage left behind, that a re-run skips finished work, and that stage 4 resumes from its
last checkpoint after an interruption.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from recipe_sandbox import make_sandbox, run_recipe

from local_lib.data.kaldi_dir import read_kv
from local_lib.data.speech_tokens import read_speech_tokens
from local_lib.models.codec_lm import CodecLM
from local_lib.models.speech_tokenizer import load_speech_tokenizer

# 5 minutes on two idle cores; the generous limits only catch a hang on a shared, loaded CPU.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
SETS = ("train", "dev", "test")
DEBUG = ("--nj", "2", "--config_suffix", "_debug", "--train_seeds", "2")


def read_scores(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f, delimiter="\t"))


def utts_of(recipe_dir: Path, dset: str) -> list[str]:
    return list(read_kv(recipe_dir / f"data/{dset}/wav.scp"))


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> tuple[Path, str]:
    recipe_dir = make_sandbox(tmp_path_factory.mktemp("grpo"), "libritts/grpo")
    result = run_recipe(recipe_dir, *DEBUG, timeout=3600)
    print(f"libritts/grpo stages 1-8 (debug configs) took {result.seconds:.1f} s")
    assert result.returncode == 0, result.output
    return recipe_dir, result.output


def test_every_stage_runs(recipe):
    _, output = recipe
    assert "not built yet" not in output
    assert "finished grpo: stages 1 2 3 4 5 6 7 8" in output


def test_stage_2_tokenizes_every_set(recipe):
    recipe_dir, _ = recipe
    vocab = load_speech_tokenizer(recipe_dir / "dump/speech_tokenizer/tokenizer.pt").vocab_size
    for dset in SETS:
        tokens = read_speech_tokens(recipe_dir / f"dump/{dset}/speech_tokens", vocab_size=vocab)
        assert list(tokens) == utts_of(recipe_dir, dset), dset  # shards merged in C order
        assert not list((recipe_dir / f"dump/{dset}").glob("speech_tokens.*")), dset


def test_stage_3_trains_the_reward_model_and_each_evaluator(recipe):
    recipe_dir, _ = recipe
    for name in ("reward_ctc", "eval_asr", "eval_speaker"):
        assert (recipe_dir / f"exp/{name}/model.pt").stat().st_size > 0, name
        assert "# Ended (code 0)" in (recipe_dir / f"exp/{name}/log/train.log").read_text()


def test_stages_4_and_5_train_base_and_grpo(recipe):
    recipe_dir, _ = recipe
    base = CodecLM.from_pretrained(recipe_dir / "exp/tts_base/model")
    grpo = CodecLM.from_pretrained(recipe_dir / "exp/tts_grpo/model")
    assert grpo.layout.vocab_size == base.layout.vocab_size
    changed = [
        not torch.equal(p, q)
        for p, q in zip(base.model.parameters(), grpo.model.parameters(), strict=True)
    ]
    assert any(changed), "GRPO left the base model unchanged"
    base_log = [json.loads(line) for line in (recipe_dir / "exp/tts_base/metrics.jsonl").open()]
    assert "dev_loss" in base_log[-1] and base_log[-1]["loss"] > 0
    grpo_log = [json.loads(line) for line in (recipe_dir / "exp/tts_grpo/metrics.jsonl").open()]
    assert {"loss", "reward/mean", "reward/asr_wer", "reward/asr_nll"} <= set(grpo_log[-1])


def test_stage_6_synthesises_with_every_system(recipe):
    recipe_dir, _ = recipe
    utts = utts_of(recipe_dir, "test")
    for out in ("exp/tokenizer_resynth/test", "exp/tts_base/synth/test", "exp/tts_grpo/synth/test"):
        scp = read_kv(recipe_dir / out / "wav.scp")
        assert list(scp) == utts, out  # merged from the two jobs of --nj 2
        assert all(Path(p).is_file() for p in scp.values()), out


def test_stage_7_scores_against_natural_and_base(recipe):
    recipe_dir, _ = recipe
    utts = utts_of(recipe_dir, "test")
    for out, compare in (
        ("exp/tokenizer_resynth/test", "natural"),
        ("exp/tts_grpo/synth/test", "base"),
    ):
        assert [row["utt"] for row in read_scores(recipe_dir / out / "scores.tsv")] == utts
        results = (recipe_dir / out / "RESULTS.md").read_text()
        assert "| WER (%) |" in results and f"Paired difference: this system − {compare}" in results
    assert [
        row["utt"] for row in read_scores(recipe_dir / "exp/tts_base/synth/test/scores.tsv")
    ] == utts
    # the reward ASR's view of the same audio, GRPO paired with base
    reward_view = (recipe_dir / "exp/tts_grpo/synth/test/reward_asr/RESULTS.md").read_text()
    assert "| WER (%) |" in reward_view and "Paired difference: this system − base" in reward_view
    rows = read_scores(recipe_dir / "exp/tts_grpo/synth/test/reward_asr/scores.tsv")
    assert [row["utt"] for row in rows] == utts and not any(row["spk_sim"] for row in rows)


def test_stage_8_reports_every_system(recipe):
    recipe_dir, _ = recipe
    report = (recipe_dir / "exp/report/REPORT.md").read_text()
    for name in ("natural", "resynth", "tokenizer_resynth", "base", "grpo"):
        assert name in report, name
    assert (recipe_dir / "exp/report/curves.png").is_file()
    assert (recipe_dir / "exp/report/scatter_wer.png").is_file()
    # LibriTTS has no emotion labels: no emotion-contour figure, no "Other figures"
    assert not list((recipe_dir / "exp/report").rglob("emotion_contours*"))
    assert "## Other figures" not in report
    reward_report = (recipe_dir / "exp/report_reward_asr/REPORT.md").read_text()
    assert "scored by the reward ASR" in reward_report and "grpo" in reward_report


def test_a_second_training_seed_is_one_more_system_and_the_report_averages_them(recipe):
    recipe_dir, _ = recipe
    runs = {}
    for sys, seed in (("grpo", "0"), ("grpo_seed1", "1")):
        command = (recipe_dir / f"exp/tts_{sys}/command.sh").read_text()
        # the seed's copy trains the same config from the same base
        assert f" --seed {seed} " in command and "--config conf/grpo_debug.yaml" in command, sys
        assert "--base-dir exp/tts_base/model" in command, sys
        metrics = recipe_dir / f"exp/tts_{sys}/metrics.jsonl"
        runs[sys] = [json.loads(line)["reward/mean"] for line in metrics.open()]
    assert runs["grpo"] != runs["grpo_seed1"]  # another seed samples other completions
    for report in ("exp/report/REPORT.md", "exp/report_reward_asr/REPORT.md"):
        text = (recipe_dir / report).read_text()
        assert "| grpo_seed1 |" in text and "| grpo_seedmean − base |" in text, report
        assert "| mean of grpo, grpo_seed1 |" in text, report


def test_rerun_skips_finished_work(recipe):
    recipe_dir, _ = recipe
    result = run_recipe(recipe_dir, "--stage", "2", "--stop-stage", "6", *DEBUG)
    assert result.returncode == 0, result.output
    for done in (
        "dump/speech_tokenizer/.done", "dump/test/.speech_tokens.done", "exp/tts_base/.done",
        "exp/tts_grpo/.done", "exp/tts_grpo/synth/test/.done", "exp/reward_ctc/.done",
    ):  # fmt: skip
        assert f"{done} is up to date, skipping" in result.output, done


def test_interrupted_stage_4_resumes_from_its_checkpoint(recipe):
    recipe_dir, _ = recipe
    out = recipe_dir / "exp/tts_base"
    final = CodecLM.from_pretrained(out / "model").model.state_dict()
    checkpoints = sorted((out / "checkpoints").glob("checkpoint_*.pt"))
    assert len(checkpoints) == 2
    # As if killed after the first kept checkpoint: the last one, the model and the marker are gone.
    checkpoints[-1].unlink()
    shutil.rmtree(out / "model")
    (out / ".done").unlink()
    result = run_recipe(
        recipe_dir, "--stage", "4", "--stop-stage", "4", "--config_suffix", "_debug"
    )
    assert result.returncode == 0, result.output
    assert (
        f"resumed from exp/tts_base/checkpoints/{checkpoints[0].name}"
        in (out / "log/train.log").read_text()
    )
    again = CodecLM.from_pretrained(out / "model").model.state_dict()
    assert all(torch.equal(final[k], again[k]) for k in final)
