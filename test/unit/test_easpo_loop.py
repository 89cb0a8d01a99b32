"""EASPO loop and CLI: a tiny Grad-TTS tuned by a tiny EASPM end to end, resume, id mapping."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
from test_easpm_training import EMOTIONS, N_MELS, write_fake_corpus

from local_lib.bin import train_easpo
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.easpm import EASPM, EASPMBundle, EASPMConfig, load_easpm, save_easpm
from local_lib.models.gradtts import GradTTS, GradTTSBundle, GradTTSConfig, load_gradtts
from local_lib.rl.easpo import TIME_PARTS, EASPOConfig, freeze_for_easpo
from local_lib.models.evaluator_nets import EvaluatorNetConfig, UtteranceClassifierNet
from local_lib.rl.easpo_loop import (
    EASPOPolicy,
    easpm_scorer,
    load_emotion_logits,
    load_prompts,
    prompt_batch,
    target_scorer,
)
from local_lib.train.trainer import read_metrics

TINY_TTS = GradTTSConfig(
    n_mels=N_MELS, cond_dim=8, enc_channels=16, enc_filter_channels=16, enc_layers=1,
    prenet_layers=1, dp_filter_channels=8, dec_dim=8, dec_dim_mults=(1, 2), dec_groups=4,
    dec_attention=False,
)  # fmt: skip
TINY_EASPM = EASPMConfig(n_mels=N_MELS, dim=16, heads=2, layers=1, ff_dim=32, dropout=0.0,
                         embed_dim=8)  # fmt: skip
CONFIG = """rollout: {{n_steps: 4, k: 3, kappa: 0.25, t_max: 0.75, steps_per_chain: 2,
  beta: 1.0, loss: spo, continuation: {continuation}, judge: {judge}}}
train: {{num_steps: {steps}, batch_size: 2, lr: 0.01, log_every: 1, save_every: 2, max_frames: 30}}
"""


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    """data/train + dump/train, a random tiny base Grad-TTS and a random tiny EASPM whose emotion
    order differs from the TTS model's."""
    data_dir = write_fake_corpus(tmp_path, "train", n_sentences=3, seed=0)
    texts = [line.split(maxsplit=1)[1] for line in (data_dir / "text").read_text().splitlines()]
    torch.manual_seed(0)
    tokenizer = CharTokenizer.build(texts)
    tts = GradTTS(TINY_TTS, tokenizer.vocab_size, n_speakers=2, n_emotions=3)
    GradTTSBundle(tts, tokenizer, ["0011", "0012"], list(EMOTIONS)).save(tmp_path / "base.pt")
    easpm = EASPM(TINY_EASPM, n_emotions=3)
    for p in easpm.parameters():  # adaLN starts at zero: give the time path some weight
        p.data += 0.1 * torch.randn_like(p)
    save_easpm(EASPMBundle(easpm, ["Sad", "Angry", "Neutral"], 3), tmp_path / "easpm.pt")
    return tmp_path


def run(
    root: Path, out: str, steps: int, continuation: str = "random", scorer: str = "easpm.pt",
    judge: str = "branch",
) -> Path:  # fmt: skip
    conf = root / f"easpo_{continuation}_{judge}_{steps}.yaml"
    conf.write_text(CONFIG.format(steps=steps, continuation=continuation, judge=judge))
    train_easpo.main([
        "--config", str(conf), "--seed", "3", "--base-model", str(root / "base.pt"),
        "--easpm", str(root / scorer), "--train-dir", str(root / "data/train"),
        "--feats-dir", str(root / "dump/train"), "--out-dir", str(root / out),
    ])  # fmt: skip
    return root / out


def test_easpo_cli_tunes_only_the_decoder(recipe: Path) -> None:
    out = run(recipe, "exp/tts_easpo", steps=3)
    base, tuned = load_gradtts(recipe / "base.pt"), load_gradtts(out / "model.pt")
    assert tuned.emotions == list(EMOTIONS) and tuned.speakers == ["0011", "0012"]
    before, after = base.model.state_dict(), tuned.model.state_dict()
    frozen = [n for n in before if not n.startswith("decoder.")]
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)
    assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith("decoder."))
    metrics = read_metrics(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert "num_steps: 3\n" in (out / "config.yaml").read_text() and (out / "command.sh").is_file()
    for key in ("loss", "score_gap", "ratio_mean", "ratio_std", "acc", "time/step"):
        assert all(key in m for m in metrics), key
    # step 1 starts from policy == reference: every ratio 0, SPO loss log 2, gap >= 0
    assert metrics[0]["loss"] == pytest.approx(0.6931472, abs=1e-5)
    assert metrics[0]["ratio_std"] == pytest.approx(0.0, abs=1e-6)
    assert all(m["score_gap"] >= 0 for m in metrics)
    assert metrics[-1]["ratio_std"] > 0  # the policy has moved away from the reference


def test_step_seconds_split_into_rollout_score_and_update(recipe: Path) -> None:
    out = run(recipe, "exp/tts_easpo", steps=2)
    for m in read_metrics(out / "metrics.jsonl"):
        parts = [m[key] for key in TIME_PARTS]
        assert all(p > 0 for p in parts), m
        assert sum(parts) <= m["time/step"], m
    log_lines = (out / "train.log").read_text().splitlines()
    summary = [line for line in log_lines if "time split" in line]
    assert len(summary) == 1
    assert re.search(r"rollout [\d.]+ s \(\d+ %\), score [\d.]+ s \(\d+ %\), update [\d.]+ s "
                     r"\(\d+ %\), other [\d.]+ s \(\d+ %\) of [\d.]+ s in 2 steps", summary[0])


def test_resumed_run_equals_uninterrupted_run(recipe: Path) -> None:
    straight = run(recipe, "exp/straight", steps=4)
    run(recipe, "exp/resumed", steps=2)
    resumed = run(recipe, "exp/resumed", steps=4)
    a = load_gradtts(straight / "model.pt").model.state_dict()
    b = load_gradtts(resumed / "model.pt").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

    def without_timing(path: Path) -> list[dict[str, float]]:
        return [
            {k: v for k, v in m.items() if not k.startswith("time/")} for m in read_metrics(path)
        ]

    assert without_timing(straight / "metrics.jsonl") == without_timing(resumed / "metrics.jsonl")


def test_scorer_maps_tts_emotion_ids(recipe: Path) -> None:
    easpm = load_easpm(recipe / "easpm.pt")  # emotions Sad, Angry, Neutral
    score = easpm_scorer(easpm, list(EMOTIONS))  # TTS order Angry, Neutral, Sad
    mel, t = torch.randn(3, 12, N_MELS), torch.full((3,), 0.3)
    mask = torch.ones(3, 12, dtype=torch.bool)
    tts_ids = torch.tensor([0, 1, 2])
    expected = easpm.model.score(mel, t, mask, torch.tensor([1, 2, 0]))
    assert torch.allclose(score(mel, t, mask, tts_ids), expected)
    with pytest.raises(ValueError, match="unknown emotion 'Happy'"):
        easpm_scorer(easpm, ["Happy"])


def save_classifier(path: Path, labels: list[str]) -> UtteranceClassifierNet:
    """A random tiny emotion classifier in the evaluator format of stage 3."""
    cfg = EvaluatorNetConfig(kind="emotion", n_mels=N_MELS, channels=8, embed_dim=4)
    torch.manual_seed(4)
    net = UtteranceClassifierNet(cfg, len(labels)).eval()
    torch.save({"kind": "evaluator", "net_config": dataclasses.asdict(cfg), "mel_config": {},
                "labels": labels, "model": net.state_dict()}, path)  # fmt: skip
    return net


def test_classifier_scorer_by_hand(tmp_path: Path) -> None:
    net = save_classifier(tmp_path / "clf.pt", ["Sad", "Happy", "Angry", "Neutral"])
    logits = load_emotion_logits(tmp_path / "clf.pt", list(EMOTIONS), "finished")
    mel = torch.randn(3, 12, N_MELS)
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[2, 7:] = False
    got = logits(mel, torch.zeros(3), mask)
    with torch.no_grad():
        out, _ = net(mel, torch.tensor([12, 12, 7]))  # frame counts from the mask
    log_post = torch.log_softmax(out, dim=-1)  # over all four of its labels
    # TTS order Angry, Neutral, Sad -> the classifier's columns 2, 3, 0; Happy is never read
    assert torch.allclose(got, log_post[:, [2, 3, 0]], atol=1e-6)
    score = target_scorer(logits)(mel, torch.zeros(3), mask, torch.tensor([2, 0, 1]))
    assert torch.allclose(score, log_post[[0, 1, 2], [0, 2, 3]], atol=1e-6)


def test_classifier_scorer_refusals(tmp_path: Path) -> None:
    save_classifier(tmp_path / "clf.pt", list(EMOTIONS))
    with pytest.raises(ValueError, match="clf.pt: an emotion classifier .* not 'branch'"):
        load_emotion_logits(tmp_path / "clf.pt", list(EMOTIONS), "branch")
    save_classifier(tmp_path / "two.pt", ["Angry", "Neutral"])
    with pytest.raises(ValueError, match=r"two.pt: .* no label for the TTS emotions \['Sad'\]"):
        load_emotion_logits(tmp_path / "two.pt", list(EMOTIONS), "finished")
    (tmp_path / "junk.pt").write_text("not a model")
    with pytest.raises(ValueError, match="junk.pt: cannot read"):
        load_emotion_logits(tmp_path / "junk.pt", list(EMOTIONS), "finished")


def test_easpo_cli_with_a_classifier_judging_finished_mels(recipe: Path) -> None:
    save_classifier(recipe / "clf.pt", list(EMOTIONS))
    out = run(recipe, "exp/tts_easpo_clf", steps=2, scorer="clf.pt", judge="finished")
    metrics = read_metrics(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2]
    assert metrics[0]["loss"] == pytest.approx(0.6931472, abs=1e-5)
    assert all(m["score_gap"] > 0 for m in metrics)  # log-posteriors of distinct mels differ
    assert "judge: finished" in (out / "config.yaml").read_text()
    with pytest.raises(ValueError, match="judge: finished"):
        run(recipe, "exp/tts_easpo_clf_branch", steps=1, scorer="clf.pt")


def test_policy_module_keeps_dropout_off_and_reference_out(recipe: Path) -> None:
    tts = load_gradtts(recipe / "base.pt")
    freeze_for_easpo(tts.model)
    module = EASPOPolicy(tts.model, lambda m, t, k, e: m.mean((1, 2)), EASPOConfig(n_steps=4))
    module.train()
    assert module.training and not any(m.training for m in tts.model.modules())
    assert set(module.state_dict()) == {f"policy.{k}" for k in tts.model.state_dict()}
    prompts = load_prompts(recipe / "data/train", recipe / "dump/train", tts, max_frames=25)
    assert len(prompts.utts) < 18 and prompts.emotions.max() < 3
    a, b = (prompt_batch(prompts, tts, 2, seed=7) for _ in range(2))
    assert torch.equal(a.text, b.text) and a.seed == b.seed
    (recipe / "dump/train/utt2num_frames").write_text("")
    with pytest.raises(ValueError, match="utt2num_frames: 0011_000001: no frame count"):
        load_prompts(recipe / "data/train", recipe / "dump/train", tts, None)
