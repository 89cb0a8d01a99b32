"""Reward registry and the Llasa-GRPO WER+NLL combination, checked by hand with a fake ASR."""

import math

import numpy as np
import pytest
import torch

from local_lib.rewards import (
    RewardError,
    RewardReferences,
    RolloutBatch,
    build_rewards,
    register_reward,
)

LLASA = {
    "combine": "harmonic",
    "components": {"asr_wer": {"weight": 0.6}, "asr_nll": {"weight": 0.4}},
}


class FakeScorer:
    def __init__(self, transcripts: list[str], nll: list[float]) -> None:
        self.transcripts, self.nll_values = transcripts, nll

    def transcribe(self, wavs: list[np.ndarray]) -> list[str]:
        return self.transcripts

    def nll(self, wavs: list[np.ndarray], texts: list[str]) -> torch.Tensor:
        return torch.tensor(self.nll_values)


def _batch(n: int) -> tuple[RolloutBatch, RewardReferences]:
    wavs = [np.zeros(160, dtype=np.float32)] * n
    texts = ["The cat sat.", "the cat sat", "a b"][:n]
    return RolloutBatch([f"spk_{i}" for i in range(n)], wavs, 16000), RewardReferences(texts)


def test_llasa_combination_by_hand() -> None:
    # utt 0: WER 0 (case and punctuation ignored) -> R_wer = 1; NLL = 3 ln 2 -> R_nll = 0.5
    #        R = (0.6 + 0.4) / (0.6 / 1 + 0.4 / 0.5) = 1 / 1.4 = 0.714286
    # utt 1: "the dog" vs "the cat sat": 1 sub + 1 del -> WER 2/3, R_wer = 1 - tanh(2) = 0.035972
    #        NLL = 3 -> R_nll = e^-1 = 0.367879; R = 1 / (16.67943 + 1.08731) = 0.056285
    # utt 2: empty transcript -> WER 1, R_wer = 1 - tanh(3) = 0.004945; NLL 0 -> R_nll = 1
    #        R = 1 / (0.6 / 0.004945 + 0.4) = 0.008215
    scorer = FakeScorer(["the cat sat", "the dog", ""], [3 * math.log(2), 3.0, 0.0])
    rewards = build_rewards(LLASA, {"scorer": scorer})
    out = rewards(*_batch(3))
    r_wer = torch.tensor([1.0, 1 - math.tanh(2.0), 1 - math.tanh(3.0)])
    torch.testing.assert_close(out.components["asr_wer"], r_wer)
    torch.testing.assert_close(out.components["asr_nll"], torch.tensor([0.5, math.exp(-1), 1.0]))
    torch.testing.assert_close(
        out.total, torch.tensor([1 / 1.4, 0.056285, 0.008215]), atol=2e-6, rtol=0
    )
    stats = out.stats()
    assert stats["reward/total_mean"] == pytest.approx(float(out.total.mean()))
    assert set(stats) >= {"reward/asr_wer_std", "reward/asr_nll_mean"}


def test_weighted_sum_and_options() -> None:
    scorer = FakeScorer(["the cat sat"], [6.0])
    cfg = {"components": {"asr_nll": {"weight": 2.0, "scale": 6.0}}}
    out = build_rewards(cfg, {"scorer": scorer})(*_batch(1))
    torch.testing.assert_close(out.total, torch.tensor([2 * math.exp(-1.0)]))  # 2 * e^(-6/6)


def test_failing_scorer_raises_never_zero() -> None:
    class Broken(FakeScorer):
        def transcribe(self, wavs: list[np.ndarray]) -> list[str]:
            raise RuntimeError("CUDA out of memory")

    rewards = build_rewards(LLASA, {"scorer": Broken([], [])})
    with pytest.raises(RewardError, match=r"asr_wer.*spk_0.*out of memory"):
        rewards(*_batch(2))


def test_non_finite_score_names_reward_and_utterance() -> None:
    rewards = build_rewards(LLASA, {"scorer": FakeScorer(["the cat sat", "x"], [0.0, math.nan])})
    with pytest.raises(RewardError, match=r"asr_nll.*not finite.*spk_1"):
        rewards(*_batch(2))


def test_custom_reward_registration_and_config_errors() -> None:
    @register_reward("test_constant")
    def constant(batch: RolloutBatch, refs: RewardReferences, *, value: float) -> torch.Tensor:
        return torch.full((len(batch.utt_ids),), value)

    out = build_rewards({"components": {"test_constant": {"value": 0.25, "weight": 4}}})(*_batch(2))
    torch.testing.assert_close(out.total, torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match="needs 'value'"):
        build_rewards({"components": {"test_constant": {}}})
    with pytest.raises(ValueError, match="unknown option"):
        build_rewards({"components": {"test_constant": {"value": 1, "valu": 2}}})
    with pytest.raises(ValueError, match="unknown reward 'nope'"):
        build_rewards({"components": {"nope": {}}})
    with pytest.raises(ValueError, match="needs 'scorer'"):
        build_rewards(LLASA)
    with pytest.raises(ValueError, match="combine"):
        build_rewards({"combine": "product", "components": {"test_constant": {"value": 1}}})


def test_template_grpo_configs_build() -> None:
    from pathlib import Path

    import yaml

    from local_lib.rl.grpo import GRPOConfig

    conf = Path(__file__).resolve().parents[2] / "egs" / "TEMPLATE" / "conf"
    for name in ("grpo.yaml", "grpo_mini.yaml"):
        cfg = yaml.safe_load((conf / name).read_text(encoding="utf-8"))
        GRPOConfig(**cfg["loss"])
        rewards = build_rewards(cfg["rewards"], {"scorer": FakeScorer(["x"], [0.0])})
        assert [(c.name, c.weight) for c in rewards.components] == [
            ("asr_wer", 0.6),
            ("asr_nll", 0.4),
        ]
