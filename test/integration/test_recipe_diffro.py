"""The DiffRO recipe (egs/seedtts/diffro) end to end with the debug configs.

One run of ./run.sh --nj 2 --config_suffix _debug: stage 3 trains Token2Text on the speech
tokens of stage 2 (beside the evaluators), stage 5 trains DiffRO and its three variants from
the one base. Stages 6-8 synthesise the seed-tts-eval list (each utterance from its own prompt
audio and transcript) with every system and score it the seed-tts-eval way. The tests check
what stages 3 and 5 left behind, the seed-tts-eval scores and report, and that a re-run skips
finished work.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from recipe_sandbox import make_sandbox, run_recipe

from local_lib.config import load_yaml
from local_lib.models.codec_lm import CodecLM
from local_lib.models.token2text import load_token2text
from local_lib.train.trainer import read_metrics

# The generous limit only catches a hang on a shared, loaded CPU.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
# system -> (beta, straight_through, MTR weights)
SYSTEMS = {
    "diffro": (0.1, False, {"speaker": 1.0}),
    "diffro_nomtr": (0.1, False, {}),
    "diffro_st": (0.1, True, {"speaker": 1.0}),
    "diffro_beta0": (0.0, False, {"speaker": 1.0}),
}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> tuple[Path, str]:
    recipe_dir = make_sandbox(tmp_path_factory.mktemp("diffro"), "seedtts/diffro")
    result = run_recipe(recipe_dir, "--nj", "2", "--config_suffix", "_debug", timeout=3600)
    print(f"seedtts/diffro stages 1-8 (debug configs) took {result.seconds:.1f} s")
    assert result.returncode == 0, result.output
    return recipe_dir, result.output


def test_every_stage_runs(recipe):
    _, output = recipe
    assert "not built yet" not in output
    assert "finished diffro: stages 1 2 3 4 5 6 7 8" in output


def test_stage_3_trains_token2text_on_the_speech_tokens(recipe):
    recipe_dir, _ = recipe
    out = recipe_dir / "exp/token2text"
    model = load_token2text(out / "model.pt")
    assert list(model.labels) == ["speaker"]  # mini_libritts: one language, no spk2gender
    assert "--train-tokens dump/train/speech_tokens" in (out / "command.sh").read_text()
    history = torch.load(out / "model.pt", weights_only=False)["train_state"]["history"]
    assert {"valid_wer", "valid_cer", "dev_acc_speaker", "holdout_acc_speaker"} <= set(history[-1])


@pytest.mark.parametrize("sys", SYSTEMS)
def test_stage_5_trains_each_system_from_the_base(recipe, sys):
    recipe_dir, _ = recipe
    base = CodecLM.from_pretrained(recipe_dir / "exp/tts_base/model")
    trained = CodecLM.from_pretrained(recipe_dir / f"exp/tts_{sys}/model")
    pairs = zip(base.model.parameters(), trained.model.parameters(), strict=True)
    assert any(not torch.equal(p, q) for p, q in pairs), f"{sys} left the base unchanged"
    beta, straight_through, mtr = SYSTEMS[sys]
    conf = load_yaml(recipe_dir / f"exp/tts_{sys}/config.yaml")
    assert (conf["loss"]["beta"], conf["loss"]["straight_through"]) == (beta, straight_through)
    assert conf["reward"]["mtr"] == mtr
    records = read_metrics(recipe_dir / f"exp/tts_{sys}/metrics.jsonl")
    keys = {"loss", "reward/total", "reward/text", "t2t_wer", "entropy", "time/generate"}
    keys |= {f"reward/{name}" for name in mtr} | ({"kl"} if beta else set())
    assert keys <= set(records[-1]) and len(records) == 2
    assert ("kl" in records[-1]) == bool(beta)
    assert "--reward-model token2text=exp/token2text/model.pt" in (
        recipe_dir / f"exp/tts_{sys}/command.sh"
    ).read_text()


def test_rerun_skips_finished_work(recipe):
    recipe_dir, _ = recipe
    args = ("--stage", "3", "--stop-stage", "5", "--config_suffix", "_debug")
    result = run_recipe(recipe_dir, *args)
    assert result.returncode == 0, result.output
    systems = (f"exp/tts_{s}/.done" for s in SYSTEMS)
    for done in ("exp/token2text/.done", "exp/tts_base/.done", *systems):
        assert f"{done} is up to date, skipping" in result.output, done


def test_the_seed_tts_eval_list_is_synthesised_scored_and_reported(recipe):
    recipe_dir, _ = recipe
    utts = [line.split()[0] for line in (recipe_dir / "data/test/text").read_text().splitlines()]
    for sys in ("base", *SYSTEMS):
        synth = recipe_dir / f"exp/tts_{sys}/synth/test"
        want = sorted(synth / "wav" / f"{u}.wav" for u in utts)
        assert sorted((synth / "wav").glob("*.wav")) == want
        results = (synth / "RESULTS.md").read_text()
        assert "WER (%), mean of per-utterance WER" in results and "SIM to prompt" in results
        # Token2Text reads tokens, not audio: no reward-ASR view of the audio
        assert not (synth / "reward_asr").exists()
    report = (recipe_dir / "exp/report/REPORT.md").read_text()
    assert "mean of per-utterance WER" in report
    assert all(sys in report for sys in SYSTEMS)
    assert not (recipe_dir / "exp/report_reward_asr").exists()
    # the list's ground-truth recordings: scored the same way, a row of their own
    results = (recipe_dir / "exp/ground_truth/test/RESULTS.md").read_text()
    assert "WER (%), mean of per-utterance WER" in results
    assert "| ground_truth | " in report


def test_stage_1_prepares_again_over_its_own_data(recipe):
    """Stage 1 run again (a stale marker, an edited db.sh) writes the same data dirs: the
    LibriTTS test set it passes through must not meet the seed-tts-eval list's files."""
    recipe_dir, _ = recipe
    before = {p.name: p.read_text() for p in (recipe_dir / "data/test").iterdir()}
    result = subprocess.run(["bash", "-c", ". ./path.sh && local/data.sh data"], cwd=recipe_dir,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert {p.name: p.read_text() for p in (recipe_dir / "data/test").iterdir()} == before
    assert "utt2target_wav" in before
