"""The GRPO training loop end to end on a tiny random codec LM with a fake reward ASR:
logged keys, resume equality, failing rewards, the reference model and rollout reuse."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from local_lib.data.features import LogMelConfig
from local_lib.data.speech_tokens import PromptPool
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.codec_lm import CodecLM
from local_lib.models.speech_tokenizer import KMeansMelTokenizer, SpeechTokenizerConfig
from local_lib.rewards import RewardError, build_rewards
from local_lib.rl.grpo import FlatRewardError, GRPOConfig
from local_lib.config import ConfigError, load_config
from local_lib.rl.grpo_loop import GRPOLoop, GRPOLoopConfig, GroupRollout
from local_lib.rl.rollout import RolloutConfig, SpeechRenderer
from local_lib.train.config import TrainSection
from local_lib.train.trainer import Trainer, TrainerConfig, read_metrics

TINY_LM = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
}
MEL = LogMelConfig(n_fft=256, win_length=256, hop_length=64, n_mels=16, f_max=8000.0)
LLASA = {
    "combine": "harmonic",
    "components": {"asr_wer": {"weight": 0.6}, "asr_nll": {"weight": 0.4}},
}
CONTRACT_KEYS = {
    "loss", "reward/mean", "reward/std", "reward/asr_wer", "reward/asr_nll", "clip_frac",
    "entropy", "zero_var_groups", "truncated_frac", "rollout_tokens_per_s", "time/generate",
    "time/decode", "time/vocode", "time/reward",
}  # fmt: skip


class FakeASR:
    """Deterministic in the audio: longer audio reads as more of the text and scores lower NLL."""

    def __init__(self) -> None:
        self.calls = 0

    def transcribe(self, wavs: list[np.ndarray]) -> list[str]:
        self.calls += 1
        words = "the cat sat on a mat".split()
        return [" ".join(words[: min(len(words), len(w) // 2000)]) for w in wavs]

    def nll(self, wavs: list[np.ndarray], texts: list[str]) -> torch.Tensor:
        return torch.tensor([3.0 / (1.0 + len(w) / 4000) for w in wavs])


class BrokenASR(FakeASR):
    def nll(self, wavs: list[np.ndarray], texts: list[str]) -> torch.Tensor:
        raise RuntimeError("decoder exploded")


@pytest.fixture(scope="module")
def tokenizer() -> KMeansMelTokenizer:
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(40, MEL.n_mels)).astype(np.float32) for _ in range(4)]
    cfg = SpeechTokenizerConfig(num_tokens=8, kmeans_iters=3, decoder_channels=8,
                                decoder_layers=1, decoder_steps=2)  # fmt: skip
    return KMeansMelTokenizer.train(feats, cfg, MEL)


def _lm() -> CodecLM:
    torch.manual_seed(0)
    return CodecLM.from_config(TINY_LM, CharTokenizer.build(["the cat sat on a mat"]), 8)


def _pool() -> PromptPool:
    """Two speakers with two utterances each, so every target has a same-speaker prompt."""
    texts = {"a_1": "the cat sat", "a_2": "a mat", "b_1": "on the mat", "b_2": "the cat"}
    tokens = {utt: [1, 2, 3, i] for i, utt in enumerate(texts)}
    return PromptPool(texts, {u: u[0] for u in texts}, tokens, "fake")


ROLLOUT_KEYS = {f.name for f in dataclasses.fields(RolloutConfig)}


def _cfg(**overrides) -> GRPOLoopConfig:
    """Rollout and train keys as flat overrides, the rest as GRPOLoopConfig fields."""
    loss = overrides.pop("loss", GRPOConfig(max_completion_length=12))
    rollout = dict(group_size=3, prompts_per_step=2, max_new_tokens=12, vocoder_iters=2,
                   min_wav_s=0.05)  # fmt: skip
    train = dict(num_steps=2, lr=1e-3, save_every=1, log_every=1)
    for key in [k for k in overrides if k in ROLLOUT_KEYS]:
        rollout[key] = overrides.pop(key)
    for key in [k for k in overrides if k in ("num_steps", "lr", "save_every")]:
        train[key] = overrides.pop(key)
    return GRPOLoopConfig(
        rollout=RolloutConfig(**rollout), train=TrainSection(**train), loss=loss,
        rewards=LLASA, **overrides,
    )  # fmt: skip


def _loop(
    tokenizer: KMeansMelTokenizer, cfg: GRPOLoopConfig, scorer: FakeASR | None = None
) -> GRPOLoop:
    rewards = build_rewards(cfg.rewards, {"scorer": scorer or FakeASR()})
    renderer = SpeechRenderer(tokenizer, cfg.rollout.vocoder_iters, cfg.rollout.min_wav_s)
    return GRPOLoop(_lm(), renderer, rewards, _pool(), cfg, seed=7)


def _fit(loop: GRPOLoop, out_dir: Path, num_steps: int) -> Trainer:
    opt = torch.optim.AdamW(loop.policy.parameters(), lr=loop.cfg.train.lr)
    loop.attach(opt)
    tcfg = TrainerConfig(
        out_dir=out_dir, num_steps=num_steps, save_every=loop.cfg.train.save_every, log_every=1
    )
    trainer = Trainer(loop.policy, opt, tcfg)
    trainer.fit(loop.loss, loop.batch)
    return trainer


def test_two_steps_update_the_policy_and_log_the_contract_keys(tokenizer, tmp_path) -> None:
    loop = _loop(tokenizer, _cfg())
    before = [p.detach().clone() for p in loop.lm.model.parameters()]
    _fit(loop, tmp_path, 2)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    assert CONTRACT_KEYS <= set(records[0]) and "kl" not in records[0]
    assert "time/update" in records[1]  # the first update's own time is known after it
    for r in records:
        assert 0.0 <= r["truncated_frac"] <= 1.0 and 0 <= r["zero_var_groups"] <= 2
        assert 0.0 < r["reward/mean"] <= 1.0 and r["rollout_tokens_per_s"] > 0
    changed = any(not torch.equal(a, b) for a, b in zip(before, loop.lm.model.parameters()))
    assert changed
    assert not loop.lm.model.training  # dropout stays off although the Trainer calls train()


def test_checkpoint_resume_gives_the_same_next_step(tokenizer, tmp_path) -> None:
    whole = _loop(tokenizer, _cfg())
    _fit(whole, tmp_path / "whole", 2)
    first = _loop(tokenizer, _cfg())
    _fit(first, tmp_path / "split", 1)
    resumed = _loop(tokenizer, _cfg())  # a new process: base weights, then the checkpoint
    trainer = _fit(resumed, tmp_path / "split", 2)
    assert trainer.step == 2
    for a, b in zip(whole.lm.model.parameters(), resumed.lm.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    want = read_metrics(tmp_path / "whole" / "metrics.jsonl")[-1]
    got = read_metrics(tmp_path / "split" / "metrics.jsonl")[-1]
    for key in ("loss", "reward/mean", "reward/asr_wer", "entropy", "truncated_frac"):
        assert got[key] == want[key], key


def _differ(a: GroupRollout, b: GroupRollout) -> bool:
    same_ids = torch.equal(a.scored.rollout.completion_ids, b.scored.rollout.completion_ids)
    return a.scored.prompts != b.scored.prompts or not same_ids


def test_rollouts_differ_between_batches_and_ranks(tokenizer) -> None:
    loop = _loop(tokenizer, _cfg())
    a, b = loop.make_rollout(0), loop.make_rollout(1)
    assert _differ(a, b)
    ro = loop.rollouts
    other_rank = GRPOLoop(loop.lm, ro.renderer, ro.rewards, _pool(), loop.cfg, seed=7, rank=1)
    c = other_rank.make_rollout(0)
    assert _differ(a, c)
    again = loop.make_rollout(0)
    assert torch.equal(a.scored.rollout.completion_ids, again.scored.rollout.completion_ids)


def test_a_failing_reward_raises(tokenizer, tmp_path) -> None:
    loop = _loop(tokenizer, _cfg(), scorer=BrokenASR())
    with pytest.raises(RewardError, match="asr_nll.*decoder exploded"):
        _fit(loop, tmp_path, 1)
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


class ConstantASR(FakeASR):
    """A broken reward model: the same transcript and NLL whatever the audio."""

    def transcribe(self, wavs: list[np.ndarray]) -> list[str]:
        return ["" for _ in wavs]

    def nll(self, wavs: list[np.ndarray], texts: list[str]) -> torch.Tensor:
        return torch.zeros(len(wavs))


def test_a_reward_without_signal_is_a_warning_then_an_error(tokenizer, tmp_path, caplog) -> None:
    loop = _loop(tokenizer, _cfg(num_steps=3, max_flat_rollouts=2), scorer=ConstantASR())
    with pytest.raises(FlatRewardError, match="rollout 1: every sample of all 2 group"):
        _fit(loop, tmp_path, 3)
    assert "rollout 0: every sample of all 2 group(s) got the same reward" in caplog.text
    assert "(1 such rollout(s) in a row)" in caplog.text
    # a run shorter than max_flat_rollouts stops at its last rollout
    short = _loop(tokenizer, _cfg(num_steps=1), scorer=ConstantASR())
    with pytest.raises(FlatRewardError, match="the reward carries no signal"):
        _fit(short, tmp_path / "short", 1)


def test_a_reward_with_signal_passes_the_flat_reward_guard(tokenizer, tmp_path, caplog) -> None:
    _fit(_loop(tokenizer, _cfg(num_steps=2, max_flat_rollouts=1)), tmp_path, 2)
    assert "got the same reward" not in caplog.text


def test_reference_only_with_beta_and_kl_logged(tokenizer, tmp_path) -> None:
    assert _loop(tokenizer, _cfg()).reference is None
    cfg = _cfg(loss=GRPOConfig(beta=0.1, max_completion_length=12), lr=5e-2)
    loop = _loop(tokenizer, cfg)
    assert loop.reference is not None
    assert all(not p.requires_grad for p in loop.reference.model.parameters())
    _fit(loop, tmp_path, 2)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert records[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # policy == reference at step 1
    assert records[1]["kl"] > 0.0  # after one update they differ


def test_several_updates_reuse_one_rollout(tokenizer, tmp_path) -> None:
    scorer = FakeASR()
    cfg = _cfg(num_iterations=2, num_steps=4, save_every=2, lr=5e-2)
    loop = _loop(tokenizer, cfg, scorer)
    _fit(loop, tmp_path, 4)
    assert scorer.calls == 2  # 4 updates from 2 rollout batches
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert records[0]["reward/mean"] == records[1]["reward/mean"]
    assert records[1]["time/generate"] == 0.0 < records[0]["time/generate"]
    assert records[0]["clip_frac"] == pytest.approx(0.0, abs=1e-6)  # ratio 1 on the first update
    with pytest.raises(ValueError, match="multiples of num_iterations"):
        _cfg(num_iterations=2, save_every=3, num_steps=4)


def test_truncation_penalty_lowers_the_reward(tokenizer) -> None:
    plain = _loop(tokenizer, _cfg(max_new_tokens=2)).make_rollout(0)
    penalty = GRPOConfig(truncation_penalty=0.5, max_completion_length=2)
    penalised_cfg = _cfg(max_new_tokens=2, loss=penalty)
    penalised = _loop(tokenizer, penalised_cfg).make_rollout(0)
    truncated = plain.stats["truncated_frac"]
    assert truncated > 0
    want = plain.stats["reward/mean"] - 0.5 * truncated
    assert penalised.stats["reward/mean"] == pytest.approx(want)


def test_config_from_yaml_fills_completion_length_and_rejects_typos(tmp_path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "rollout: {max_new_tokens: 33}\ntrain: {lr: 1e-4}\nloss: {loss_type: dr_grpo}\n"
        "rewards: {components: {asr_wer: {}}}\n"
    )
    cfg = load_config(good, GRPOLoopConfig)
    assert cfg.loss.max_completion_length == 33 and cfg.loss.loss_type == "dr_grpo"
    assert cfg.train.lr == 1e-4
    bad = tmp_path / "bad.yaml"
    bad.write_text("rollout: {group_sise: 4}\ntrain: {}\nloss: {}\nrewards: {}\n")
    with pytest.raises(ConfigError, match="bad.yaml.*rollout.group_sise"):
        load_config(bad, GRPOLoopConfig)
    grad_accum = tmp_path / "accum.yaml"
    grad_accum.write_text("rollout: {}\ntrain: {grad_accum: 2}\nrewards: {}\n")
    with pytest.raises(ConfigError, match="grad_accum must be 1"):
        load_config(grad_accum, GRPOLoopConfig)


@pytest.mark.parametrize("name", ["grpo.yaml", "grpo_mini.yaml", "grpo_debug.yaml"])
def test_template_configs_load(name: str) -> None:
    conf = Path(__file__).resolve().parents[2] / "egs" / "TEMPLATE" / "conf" / name
    cfg = load_config(conf, GRPOLoopConfig)
    assert dataclasses.asdict(cfg)["loss"]["max_completion_length"] == cfg.rollout.max_new_tokens
    build_rewards(cfg.rewards, {"scorer": FakeASR()})


def test_grpo_raises_a_reward_the_policy_can_reach(tokenizer, tmp_path) -> None:
    """FakeASR pays for longer audio: 20 GRPO steps must make completions longer and the
    reward higher (a sign error or a detached loss would leave both flat)."""
    cfg = _cfg(num_steps=20, group_size=4, lr=3e-3, max_new_tokens=24,
               loss=GRPOConfig(max_completion_length=24))  # fmt: skip
    _fit(_loop(tokenizer, cfg), tmp_path, 20)
    records = read_metrics(tmp_path / "metrics.jsonl")
    length = [r["completion_len"] for r in records]
    reward = [r["reward/mean"] for r in records]
    assert np.mean(length[-5:]) > np.mean(length[:5]) + 4
    assert np.mean(reward[-5:]) > np.mean(reward[:5])
