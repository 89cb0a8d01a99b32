"""The HPRO recipe (egs/esd/hpro) stages 1-8 end to end with the debug configs.

Stage 3 trains the reward codec on the speech tokens of stage 2 (beside the evaluators), stage 4
an emotion-controlled base, stage 5 HPRO and its two variants (summed, sentence) from it, and
stages 6-8 synthesise, score and report a 20-utterance test subset with every system. The tests
check what stages 3-5 left behind (the schedule each system ran, from its metrics), the scores
and the report with its emotion-contour figure, and that a re-run skips finished work.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from recipe_sandbox import make_sandbox, run_recipe, subset_data_dir
from test_recipe_easpo import sentences_in_every_emotion

from local_lib.config import load_yaml
from local_lib.models.codec_lm import CodecLM
from local_lib.models.reward_codec import load_reward_codec
from local_lib.rl.hpro import TERMS
from local_lib.train.trainer import read_metrics

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
# system -> the terms on at each of the debug configs' 3 steps (frame_steps 1, word_steps 1)
FRAME = {"frame_content", "frame_style", "text"}
SYSTEMS = {
    "hpro": [FRAME, FRAME | {"word"}, set(TERMS)],
    "hpro_summed": [set(TERMS)] * 3,
    "hpro_sentence": [{"sentence"}] * 3,
}
# Two sentences in every emotion from each speaker (20 utterances), as in the EASPO test.
TEST_SET = "test_small"
RUN_ARGS = ("--nj", "2", "--config_suffix", "_debug", "--test_sets", TEST_SET)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> tuple[Path, str]:
    recipe_dir = make_sandbox(tmp_path_factory.mktemp("hpro"), "esd/hpro")
    first = run_recipe(recipe_dir, "--stop-stage", "1", "--nj", "2")
    assert first.returncode == 0, first.output
    utts = sentences_in_every_emotion(recipe_dir / "data/test", 2)
    subset_data_dir(recipe_dir, "test", TEST_SET, utts)
    result = run_recipe(recipe_dir, "--stage", "2", *RUN_ARGS, timeout=3600)
    print(f"esd/hpro stages 1-8 (debug configs, {TEST_SET}) took "
          f"{first.seconds + result.seconds:.1f} s")  # fmt: skip
    assert result.returncode == 0, result.output
    return recipe_dir, result.output


def test_every_stage_runs(recipe):
    _, output = recipe
    assert "finished hpro: stages 2 3 4 5 6 7 8" in output
    assert "not built yet" not in output


def test_stage_3_trains_the_reward_codec_on_the_speech_tokens(recipe):
    recipe_dir, _ = recipe
    out = recipe_dir / "exp/reward_codec"
    codec = load_reward_codec(out / "model.pt")
    assert codec.emotions == ["Angry", "Happy", "Neutral", "Sad", "Surprise"]
    assert "--train-tokens dump/train/speech_tokens" in (out / "command.sh").read_text()
    history = torch.load(out / "model.pt", weights_only=False)["train_state"]["history"]
    assert {"recon_acc", "valid_wer", "dev_acc_emotion", "word_ccc"} <= set(history[-1])


def test_stage_4_trains_an_emotion_controlled_base(recipe):
    recipe_dir, _ = recipe
    base = CodecLM.from_pretrained(recipe_dir / "exp/tts_base/model")
    assert base.layout.emotions == ("Angry", "Happy", "Neutral", "Sad", "Surprise")
    conf = load_yaml(recipe_dir / "exp/tts_base/config.yaml")
    assert conf["emotion_instruction"] is True


@pytest.mark.parametrize("sys", SYSTEMS)
def test_stage_5_trains_each_system_on_its_schedule(recipe, sys):
    recipe_dir, _ = recipe
    base = CodecLM.from_pretrained(recipe_dir / "exp/tts_base/model")
    trained = CodecLM.from_pretrained(recipe_dir / f"exp/tts_{sys}/model")
    pairs = zip(base.model.parameters(), trained.model.parameters(), strict=True)
    assert any(not torch.equal(p, q) for p, q in pairs), f"{sys} left the base unchanged"
    conf = load_yaml(recipe_dir / f"exp/tts_{sys}/config.yaml")
    assert conf["batch"]["prompt_match"] == "other_emotion"
    records = read_metrics(recipe_dir / f"exp/tts_{sys}/metrics.jsonl")
    assert [{t for t in TERMS if r[f"on/{t}"]} for r in records] == SYSTEMS[sys]
    keys = {f"loss/{t}" for t in TERMS} | {"kl", "emotion_acc", "codec_wer", "ref_nll"}
    assert keys <= set(records[-1])
    assert "--reward-model reward_codec=exp/reward_codec/model.pt" in (
        recipe_dir / f"exp/tts_{sys}/command.sh"
    ).read_text()


def test_every_system_is_synthesised_scored_and_reported(recipe):
    recipe_dir, _ = recipe
    utts = [line.split()[0] for line in (recipe_dir / f"data/{TEST_SET}/text").open()]
    for sys in ("base", *SYSTEMS):
        synth = recipe_dir / f"exp/tts_{sys}/synth/{TEST_SET}"
        assert sorted((synth / "wav").glob("*.wav")) == sorted(
            synth / "wav" / f"{u}.wav" for u in utts
        )
        results = (synth / "RESULTS.md").read_text()
        assert "emotion" in results.lower()
        # the reward codec reads tokens, not audio: no reward-ASR view of the audio
        assert not (synth / "reward_asr").exists()
    report = (recipe_dir / "exp/report/REPORT.md").read_text()
    assert all(sys in report for sys in SYSTEMS)
    assert not (recipe_dir / "exp/report_reward_asr").exists()


def test_report_has_the_emotion_contour_figure_of_natural_base_and_hpro(recipe):
    recipe_dir, _ = recipe
    report_dir = recipe_dir / "exp/report"
    name = f"emotion_contours_{TEST_SET}.png"
    assert (report_dir / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"](figures/{name})" in (report_dir / "REPORT.md").read_text()
    command = (report_dir / "log/plot_emotion_contours.log").read_text().splitlines()[0]
    systems = [arg.split("=")[0] for arg in command.split("--system ")[1:]]
    assert systems == ["natural", "base", "hpro"]


def test_rerun_skips_finished_work(recipe):
    recipe_dir, _ = recipe
    result = run_recipe(recipe_dir, "--stage", "3", "--stop-stage", "5", *RUN_ARGS)
    assert result.returncode == 0, result.output
    systems = (f"exp/tts_{s}/.done" for s in SYSTEMS)
    for done in ("exp/reward_codec/.done", "exp/tts_base/.done", *systems):
        assert f"{done} is up to date, skipping" in result.output, done
