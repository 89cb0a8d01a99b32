"""The EASPO recipe (Grad-TTS family) stages 1-8 end to end with debug configs."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pytest
from recipe_sandbox import make_sandbox, run_recipe

from local_lib.models.gradtts import load_gradtts
from local_lib.train.trainer import read_metrics

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
SYSTEMS = ("easpo", "easpo_k2", "easpo_winner", "easpo_baseneg", "easpo_emotion_clf")
# CI's budget cannot score six systems on all 300 test utterances: the test set here is two
# sentences in every emotion from each speaker (20 utterances), made with utils/subset_data_dir.sh.
TEST_SET = "test_small"
# run.sh leaves the baseneg variant out by default; the test runs every system
RUN_ARGS = ("--nj", "2", "--config_suffix", "_debug", "--test_sets", TEST_SET,
            "--method_variants", "k2 winner baseneg emotion_clf")  # fmt: skip


def sentences_in_every_emotion(data_dir: Path, per_emotion: int) -> list[str]:
    """The first utterances of each (speaker, emotion): ESD numbers the same sentences alike."""
    groups: dict[tuple[str, str], list[str]] = {}
    for line in (data_dir / "utt2emo").open():
        utt, emotion = line.split()
        groups.setdefault((utt.split("_")[0], emotion), []).append(utt)
    return sorted(u for utts in groups.values() for u in sorted(utts)[:per_emotion])


@pytest.fixture(scope="module")
def easpo_recipe(tmp_path_factory) -> tuple[Path, str]:
    recipe_dir = make_sandbox(tmp_path_factory.mktemp("easpo"), "esd/easpo")
    first = run_recipe(recipe_dir, "--stop-stage", "1", "--nj", "2")
    assert first.returncode == 0, first.output
    keep = recipe_dir / "test_small.list"
    keep.write_text(
        "".join(f"{u}\n" for u in sentences_in_every_emotion(recipe_dir / "data/test", 2))
    )
    subset = subprocess.run(
        ["bash", "-c", f". ./path.sh && utils/subset_data_dir.sh --utt-list {keep.name} "
         f"data/test data/{TEST_SET}"],
        cwd=recipe_dir, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert subset.returncode == 0, subset.stderr
    result = run_recipe(recipe_dir, "--stage", "2", *RUN_ARGS, timeout=3600)
    seconds = first.seconds + result.seconds
    print(f"esd/easpo stages 1-8 (debug configs, {TEST_SET}) took {seconds:.1f} s")
    assert result.returncode == 0, result.output
    return recipe_dir, result.output


def test_every_stage_runs(easpo_recipe):
    _, output = easpo_recipe
    assert "finished easpo: stages 2 3 4 5 6 7 8" in output
    assert "not built yet" not in output


def test_base_and_method_models_load_with_the_corpus_names(easpo_recipe):
    recipe_dir, _ = easpo_recipe
    for system in ("base", *SYSTEMS):
        bundle = load_gradtts(recipe_dir / f"exp/tts_{system}/model.pt")
        assert bundle.speakers == ["0011", "0012"], system
        assert bundle.emotions == ["Angry", "Happy", "Neutral", "Sad", "Surprise"], system
    base = read_metrics(recipe_dir / "exp/tts_base/metrics.jsonl")
    assert "dev/loss" in base[-1] and "diffusion" in base[-1]
    for system in SYSTEMS:
        last = read_metrics(recipe_dir / f"exp/tts_{system}/metrics.jsonl")[-1]
        assert {"loss", "score_gap", "ratio_mean", "acc"} <= set(last), system
        # the stage-5 profile: the step's seconds and their split
        parts = [last[k] for k in ("time/rollout", "time/score", "time/update")]
        assert min(parts) >= 0 and sum(parts) <= last["time/step"], system
        assert "time split of this run's steps: rollout" in (
            recipe_dir / f"exp/tts_{system}/train.log"
        ).read_text()


def test_the_baseneg_variant_trains_and_reads_its_own_easpm(easpo_recipe):
    """Stage 5 trains the variant's EASPM from the base first; the variant's EASPO reads it, the
    other systems read stage 3's."""
    recipe_dir, _ = easpo_recipe
    easpm = recipe_dir / "exp/easpm_baseneg"
    last = read_metrics(easpm / "metrics.jsonl")[-1]
    assert {"loss_clep", "loss_base", "base_pair_acc"} <= set(last)
    assert "--base-model exp/tts_base/model.pt" in (easpm / "command.sh").read_text()
    assert "--easpm exp/easpm_baseneg/model.pt" in (
        recipe_dir / "exp/tts_easpo_baseneg/command.sh"
    ).read_text()
    assert "--easpm exp/easpm/model.pt" in (recipe_dir / "exp/tts_easpo/command.sh").read_text()
    assert "loss_base" not in (recipe_dir / "exp/easpm/metrics.jsonl").read_text()


def test_the_emotion_clf_variant_is_judged_by_the_reward_classifier(easpo_recipe):
    """Stage 3 trains the reward classifier with the evaluators' trainer; the variant's EASPO
    reads it and finishes its candidates before judging them."""
    recipe_dir, _ = easpo_recipe
    clf = recipe_dir / "exp/emotion_clf"
    assert "conf/emotion_clf_debug.yaml" in (clf / "command.sh").read_text()
    system = recipe_dir / "exp/tts_easpo_emotion_clf"
    assert "--easpm exp/emotion_clf/model.pt" in (system / "command.sh").read_text()
    assert "judge: finished" in (system / "config.yaml").read_text()
    assert "judge=finished" in (system / "log/train.log").read_text()
    assert "judge: branch" in (recipe_dir / "exp/tts_easpo/config.yaml").read_text()


def test_easpm_agreement_runs_on_the_variant(easpo_recipe):
    recipe_dir, _ = easpo_recipe
    out = recipe_dir / "exp/easpm_agreement_baseneg"
    result = subprocess.run(
        ["bash", "-c", ". ./path.sh && python -m local_lib.bin.easpm_agreement "
         "--config conf/easpo_baseneg_debug.yaml --model exp/tts_base/model.pt "
         "--easpm exp/easpm_baseneg/model.pt --emotion exp/eval_emotion/model.pt "
         f"--data-dir data/{TEST_SET} --feats-config conf/feats.yaml --num-prompts 2 "
         f"--vocoder-iters 2 --out-dir {out.relative_to(recipe_dir)}"],
        cwd=recipe_dir, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with (out / "agreement.tsv").open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len({r["utt"] for r in rows}) == 2
    assert "| all |" in (out / "agreement.md").read_text()


def test_every_system_synthesises_and_is_scored_against_base(easpo_recipe):
    recipe_dir, _ = easpo_recipe
    utts = [line.split()[0] for line in (recipe_dir / f"data/{TEST_SET}/wav.scp").open()]
    assert len(utts) == 20
    for system in ("base", *SYSTEMS):
        synth = recipe_dir / f"exp/tts_{system}/synth/{TEST_SET}"
        assert [line.split()[0] for line in (synth / "wav.scp").open()] == utts, system
        assert len(list((synth / "wav").glob("*.wav"))) == len(utts), system
        with (synth / "scores.tsv").open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        assert [r["utt"] for r in rows] == utts
        # Each utterance was synthesised in its own emotion, which the scorer compares with.
        emotions = dict(line.split() for line in (recipe_dir / f"data/{TEST_SET}/utt2emo").open())
        assert all(r["emo_label"] == emotions[r["utt"]] for r in rows)
        results = (synth / "RESULTS.md").read_text()
        assert "emotion accuracy (%)" in results
        if system != "base":
            assert "Paired difference: this system − base" in results


def test_report_has_every_system_and_the_figures(easpo_recipe):
    recipe_dir, _ = easpo_recipe
    report = (recipe_dir / "exp/report/REPORT.md").read_text()
    for name in ("natural", "resynth", "base", *SYSTEMS):
        assert name in report
    figures = recipe_dir / "exp/report/figures"
    assert (figures / f"emotion_contours_{TEST_SET}.png").stat().st_size > 0
    assert (figures / "preference_accuracy_vs_t.png").stat().st_size > 0


def test_rerun_skips_finished_training_and_synthesis(easpo_recipe):
    recipe_dir, _ = easpo_recipe
    result = run_recipe(recipe_dir, *RUN_ARGS, "--stage", "4", "--stop-stage", "6")
    assert result.returncode == 0, result.output
    assert "exp/tts_base/.done is up to date, skipping" in result.output
    assert "exp/easpm_baseneg/.done is up to date, skipping" in result.output
    for system in SYSTEMS:
        assert f"exp/tts_{system}/.done is up to date, skipping" in result.output
        assert f"exp/tts_{system}/synth/{TEST_SET}/.done is up to date, skipping" in result.output


def test_stage5_does_not_wait_for_the_evaluators(easpo_recipe):
    """A failing evaluator job is reported after stage 5 has gone ahead (stage 5 needs only EASPM),
    and the run fails naming that job's log."""
    recipe_dir, _ = easpo_recipe
    conf = recipe_dir / "conf/eval_asr_debug.yaml"
    good_conf = conf.read_text()
    exp, kept = recipe_dir / "exp/eval_asr", recipe_dir / "exp/eval_asr.kept"
    exp.rename(kept)
    conf.write_text(good_conf + "no_such_key: 1\n")
    try:
        result = run_recipe(recipe_dir, *RUN_ARGS, "--stage", "3", "--stop-stage", "5")
    finally:
        conf.write_text(good_conf)
        shutil.rmtree(exp, ignore_errors=True)
        kept.rename(exp)
    assert result.returncode != 0
    failure = "stage 3 failed, see exp/eval_asr/log/train.log"
    assert failure in result.output, result.output
    skipped = result.output.index("stage 5: exp/tts_easpo/.done is up to date")
    assert skipped < result.output.index(failure)
