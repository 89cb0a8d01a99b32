"""The ``attention_alignment`` reward (W3AR's word reward, one number per sample) by hand on
planted attention, its registry use from YAML, and its errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_w3ar_loop import asr  # noqa: F401  (the tiny ESPnet reward ASR fixture)

from local_lib.bin import score
from local_lib.config import load_yaml
from local_lib.models.asr_reward import HeadAttention
from local_lib.rewards import RewardError, RewardReferences, RolloutBatch, build_rewards
from local_lib.rewards import attention_rewards as module

WORDS = np.array([0, 0, -1, 1])  # "ab c": two words, the space in none


def _sharp() -> np.ndarray:
    """One-hot rows peaking at frames 0, 2, 3, 5 of 6: purity 1, peaks stepping 2, 1, 2."""
    rows = np.zeros((1, 4, 6), np.float32)
    for t, frame in enumerate((0, 2, 3, 5)):
        rows[0, t, frame] = 1.0
    return rows


def _blurred() -> np.ndarray:
    """Uniform rows: every peak at frame 0 (the first maximum), whose 3-frame window the edge
    cuts to frames 0-1: purity 2/6 and no step."""
    return np.full((1, 4, 6), 1.0 / 6, np.float32)


@pytest.fixture
def planted(asr, monkeypatch, tmp_path):  # noqa: F811
    """The fixture's ASR answering with the sharp then the blurred attention, and the heads
    file read for the path the reward is given."""
    seen: dict[str, object] = {}

    def head_attention(wavs, texts, heads):
        seen["texts"], seen["heads"] = list(texts), heads
        return [HeadAttention(["a", "b", " ", "c"], WORDS, heads, w, 0.04)
                for w in (_sharp(), _blurred())][: len(wavs)]  # fmt: skip

    def read_heads(model: Path):
        seen["model"] = model
        return [(0, 1)]

    monkeypatch.setattr(asr, "head_attention", head_attention)
    monkeypatch.setattr(module, "read_heads", read_heads)
    batch = RolloutBatch(["u", "u"], [np.zeros(1600, np.float32)] * 2, 16000,
                         speech_tokens=[torch.arange(5), torch.arange(3)])  # fmt: skip
    return batch, tmp_path / "model.pt", seen


def test_mean_word_reward_by_hand(asr, planted) -> None:  # noqa: F811
    batch, model, seen = planted
    refs = RewardReferences(["ab c"] * 2)
    got = module.attention_alignment_reward(batch, refs, scorer=asr, scorer_path=model)
    # sharp: tokens 0.5*1 + 0.5*mono with mono 0, tanh(.2), tanh(.1), tanh(.2); word 0 = tokens
    # 0-1, word 1 = token 3; blurred: purity 2/6 everywhere, no step: every word 1/6
    sharp = ((0.5 + 0.5 + 0.5 * math.tanh(0.2)) / 2 + (0.5 + 0.5 * math.tanh(0.2))) / 2
    np.testing.assert_allclose(got.numpy(), [sharp, 1 / 6], rtol=1e-6)
    assert seen == {"texts": ["ab c"] * 2, "heads": [(0, 1)], "model": model}
    purity_only = module.attention_alignment_reward(
        batch, refs, scorer=asr, scorer_path=model, use_monotonicity=False
    )
    np.testing.assert_allclose(purity_only.numpy(), [1.0, 2 / 6], rtol=1e-6)


def test_built_from_yaml_with_the_scorer_and_its_path(asr, planted) -> None:  # noqa: F811
    batch, model, _ = planted
    rewards = build_rewards(
        {"components": {"attention_alignment": {"beta": 0.2}}},
        {"scorer": asr, "scorer_path": model},
    )
    out = rewards(batch, RewardReferences(["ab c"] * 2))
    sharp = ((0.5 + 0.5 + 0.5 * math.tanh(0.4)) / 2 + (0.5 + 0.5 * math.tanh(0.4))) / 2
    np.testing.assert_allclose(out.total.numpy(), [sharp, 1 / 6], rtol=1e-6)


def test_errors_name_what_is_wrong(asr, planted) -> None:  # noqa: F811
    batch, model, _ = planted
    refs = RewardReferences(["ab c"] * 2)
    mel_only = RolloutBatch(["u", "u"], None, 16000)
    with pytest.raises(ValueError, match="reads audio"):
        module.attention_alignment_reward(mel_only, refs, scorer=asr, scorer_path=model)
    with pytest.raises(ValueError, match="no decoder cross-attention"):
        module.attention_alignment_reward(batch, refs, scorer=object(), scorer_path=model)
    with pytest.raises(ValueError, match="needs 'scorer_path'"):
        build_rewards({"components": {"attention_alignment": {}}}, {"scorer": asr})
    both_off = build_rewards(
        {"components": {"attention_alignment": {"use_purity": False, "use_monotonicity": False}}},
        {"scorer": asr, "scorer_path": model},
    )
    with pytest.raises(RewardError, match="no reward is left"):
        both_off(batch, refs)


def test_the_recipe_mapping_builds_the_reward(asr, planted) -> None:  # noqa: F811
    batch, model, _ = planted
    conf = Path(__file__).resolve().parents[2] / "egs/TEMPLATE/conf/best_of_n_attention.yaml"
    rewards = build_rewards(load_yaml(conf), {"scorer": asr, "scorer_path": model})
    want = module.attention_alignment_reward(
        batch, RewardReferences(["ab c"] * 2), scorer=asr, scorer_path=model
    )
    torch.testing.assert_close(rewards(batch, RewardReferences(["ab c"] * 2)).total, want)


def test_the_scorers_aligner_by_hand(asr, planted, monkeypatch) -> None:  # noqa: F811
    batch, model, _ = planted
    monkeypatch.setattr(score, "read_heads", lambda path: [(0, 1)] if path == model else [])
    purity, monotonicity = score.attention_aligner(model, asr)(list(batch.wavs), ["ab c"] * 2)
    np.testing.assert_allclose(purity, [1.0, 2 / 6], rtol=1e-6)
    # the first token has no step; the sharp sample steps 2, 1, 2 frames
    sharp = (2 * math.tanh(0.2) + math.tanh(0.1)) / 3
    np.testing.assert_allclose(monotonicity, [sharp, 0.0], rtol=1e-6, atol=1e-12)
    with pytest.raises(SystemExit, match="give --asr"):
        score.main(["--data-dir", "d", "--wav-dir", "w", "--out-dir", "o", "--attention"])
