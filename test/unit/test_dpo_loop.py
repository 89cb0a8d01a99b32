"""The DPO loop end to end on a tiny random codec LM with a fake reward ASR (the fixtures of
test_grpo_loop.py): logged keys, who samples the pairs and when, resume equality, skipped
texts, a step without pairs, a reward the policy can reach; and the stats' mean over ranks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import test_grpo_loop
from test_grpo_loop import LLASA, FakeASR, _lm, _pool

from local_lib.config import ConfigError, load_config
from local_lib.rewards import build_rewards
from local_lib.rl.dpo import DPOConfig
from local_lib.rl.dpo_loop import DPOLoop, DPOLoopConfig
from local_lib.rl.rollout import RolloutConfig, SpeechRenderer, mean_over_ranks
from local_lib.train.config import TrainSection
from local_lib.train.trainer import Trainer, TrainerConfig, read_metrics
from local_lib.train.distributed import cleanup

tokenizer = test_grpo_loop.tokenizer  # its module-scoped fixture: a tiny trained tokenizer
TEMPLATE = Path(__file__).resolve().parents[2] / "egs" / "TEMPLATE" / "conf"
LOGGED = {
    "loss", "dpo/accuracy", "dpo/margin", "dpo/chosen_logratio", "dpo/rejected_logratio",
    "dpo/chosen_nll", "dpo/pairs", "dpo/skipped_texts", "dpo/draws", "reward/mean",
    "reward/std", "reward/chosen", "reward/rejected", "reward/asr_wer", "reward/asr_nll",
    "completion_len", "truncated_frac", "rollout_tokens_per_s", "time/generate", "time/decode",
    "time/vocode", "time/reward",
}  # fmt: skip


def _cfg(
    num_steps: int = 2,
    save_every: int = 1,
    lr: float = 1e-3,
    rewards: dict | None = None,
    rollout: dict | None = None,
    **dpo,
) -> DPOLoopConfig:
    ro = dict(group_size=3, prompts_per_step=2, max_new_tokens=12, vocoder_iters=2,
              min_wav_s=0.05)  # fmt: skip
    return DPOLoopConfig(
        rollout=RolloutConfig(**{**ro, **(rollout or {})}),
        train=TrainSection(num_steps=num_steps, lr=lr, save_every=save_every, log_every=1),
        rewards=rewards or LLASA,
        dpo=DPOConfig(**{"pairs_per_step": 2, **dpo}),
    )


def _loop(tokenizer, cfg: DPOLoopConfig, scorer: FakeASR | None = None, rank: int = 0) -> DPOLoop:
    rewards = build_rewards(cfg.rewards, {"scorer": scorer or FakeASR()})
    renderer = SpeechRenderer(tokenizer, cfg.rollout.vocoder_iters, cfg.rollout.min_wav_s)
    return DPOLoop(_lm(), renderer, rewards, _pool(), cfg, seed=7, rank=rank)


def _fit(loop: DPOLoop, out_dir: Path, num_steps: int | None = None) -> Trainer:
    train = loop.cfg.train
    opt = torch.optim.AdamW(loop.policy.parameters(), lr=train.lr)
    tcfg = TrainerConfig(out_dir=out_dir, num_steps=num_steps or train.num_steps,
                         save_every=train.save_every, log_every=1)  # fmt: skip
    trainer = Trainer(loop.policy, opt, tcfg)
    trainer.fit(loop.loss, loop.batch)
    return trainer


def test_two_steps_train_the_policy_on_pairs_of_the_base(tokenizer, tmp_path) -> None:
    loop = _loop(tokenizer, _cfg())
    assert loop.rollouts.lm is loop.reference  # offline: the frozen base samples
    before = [p.detach().clone() for p in loop.lm.model.parameters()]
    _fit(loop, tmp_path)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2] and LOGGED <= set(records[0])
    first = records[0]
    # policy == reference at step 1: both log-ratios 0, so the loss is log 2
    assert first["dpo/chosen_logratio"] == first["dpo/rejected_logratio"] == 0.0
    assert first["loss"] == pytest.approx(np.log(2.0))
    assert records[1]["dpo/margin"] > 0.0  # one update raised chosen over rejected
    for r in records:
        assert r["dpo/pairs"] >= 2 and r["reward/chosen"] > r["reward/rejected"]
        assert r["dpo/pairs"] + r["dpo/skipped_texts"] == 2 * r["dpo/draws"]
    params = zip(before, loop.lm.model.parameters(), loop.reference.model.parameters())
    assert any(not torch.equal(b, p) for b, p, _ in params)
    for b, _, ref in zip(before, loop.lm.model.parameters(), loop.reference.model.parameters()):
        assert torch.equal(b, ref) and not ref.requires_grad
    assert not loop.lm.model.training  # dropout stays off although the Trainer calls train()


def test_online_pairs_are_rebuilt_from_the_policy_every_k_steps(tokenizer, tmp_path) -> None:
    loop = _loop(tokenizer, _cfg(num_steps=4, save_every=2, lr=5e-2, refresh_every=2))
    assert loop.rollouts.lm is loop.lm
    events: list[tuple[str, int, float]] = []
    batch, make_pairs = loop.batch, loop.make_pairs

    def fingerprint() -> float:
        return float(sum(p.detach().double().sum() for p in loop.lm.model.parameters()))

    def spy_batch(step: int):
        events.append(("batch", step, fingerprint()))
        return batch(step)

    def spy_make_pairs(step: int):
        events.append(("pairs", step, fingerprint()))
        return make_pairs(step)

    loop.batch, loop.make_pairs = spy_batch, spy_make_pairs
    _fit(loop, tmp_path)
    assert [e[:2] for e in events] == [
        ("batch", 0), ("pairs", 0), ("pairs", 1), ("batch", 1),
        ("batch", 2), ("pairs", 2), ("pairs", 3), ("batch", 3),
    ]  # fmt: skip
    weights = {step: w for kind, step, w in events if kind == "pairs"}
    assert weights[0] == weights[1] != weights[2] == weights[3]  # the policy of the round's start
    assert weights[2] == next(w for kind, step, w in events if kind == "batch" and step == 2)


@pytest.mark.parametrize("refresh_every", [0, 2])
def test_checkpoint_resume_repeats_the_uninterrupted_run(tokenizer, tmp_path, refresh_every):
    cfg = _cfg(num_steps=4, save_every=2, lr=5e-2, refresh_every=refresh_every)
    whole = _loop(tokenizer, cfg)
    _fit(whole, tmp_path / "whole")
    _fit(_loop(tokenizer, cfg), tmp_path / "split", num_steps=2)
    resumed = _loop(tokenizer, cfg)  # a new process: base weights, then the checkpoint
    assert _fit(resumed, tmp_path / "split").step == 4
    for a, b in zip(whole.lm.model.parameters(), resumed.lm.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    want = read_metrics(tmp_path / "whole" / "metrics.jsonl")[2:]
    got = read_metrics(tmp_path / "split" / "metrics.jsonl")[2:]
    for w, g in zip(want, got, strict=True):
        for key in ("loss", "dpo/margin", "reward/mean", "reward/chosen", "dpo/pairs"):
            assert g[key] == w[key], key


class TextBlindASR(FakeASR):
    """Scores every sample of the text "a mat" alike, so that text never gives a pair."""

    def nll(self, wavs: list[np.ndarray], texts: list[str]) -> torch.Tensor:
        nll = super().nll(wavs, texts)
        return torch.where(torch.tensor([t == "a mat" for t in texts]), 1.0, nll)


def test_texts_without_a_pair_are_skipped_and_more_texts_drawn(tokenizer, tmp_path) -> None:
    cfg = _cfg(num_steps=6, rewards={"components": {"asr_nll": {}}}, max_draws=3)
    loop = _loop(tokenizer, cfg, scorer=TextBlindASR())
    trained_prompts: list[list[int]] = []
    loss = loop.loss

    def spy_loss(model, batch):
        trained_prompts.extend(batch.prompts)
        return loss(model, batch)

    loop.loss = spy_loss
    _fit(loop, tmp_path)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert sum(r["dpo/skipped_texts"] for r in records) > 0
    assert any(r["dpo/draws"] > 1 for r in records)
    for r in records:
        assert r["dpo/pairs"] + r["dpo/skipped_texts"] == 2 * r["dpo/draws"]
        assert r["dpo/pairs"] >= 2 or r["dpo/draws"] == 3
    source = loop.rollouts.prompts
    prompt = source.prompt_of["a_2"]  # the utterance whose text is "a mat"
    texts, tokens = source.pool.texts, source.pool.tokens
    blind = source.lm.prompt_ids(texts["a_2"], texts[prompt], tokens[prompt])
    assert blind not in trained_prompts


def test_a_step_without_any_pair_fails_naming_the_reward(tokenizer, tmp_path) -> None:
    class DeafASR(FakeASR):
        def transcribe(self, wavs: list[np.ndarray]) -> list[str]:
            return [""] * len(wavs)

        def nll(self, wavs: list[np.ndarray], texts: list[str]) -> torch.Tensor:
            return torch.ones(len(wavs))

    loop = _loop(tokenizer, _cfg(max_draws=2, min_gap=0.01), scorer=DeafASR())
    with pytest.raises(RuntimeError, match=r"4 texts in 2 rollout batches.*min_gap 0.01.*"
                                           r"harmonic of asr_wer, asr_nll"):  # fmt: skip
        _fit(loop, tmp_path)


@pytest.mark.parametrize("refresh_every", [0, 1])
def test_dpo_raises_a_reward_the_policy_can_reach(tokenizer, tmp_path, refresh_every) -> None:
    """FakeASR pays for longer audio, so the chosen sample is the longer one: after 20 steps,
    offline or online, the policy's own samples must be longer and better rewarded than the
    base's on the same prompts and seeds (a sign error or a detached loss would leave them)."""
    cfg = _cfg(num_steps=20, lr=3e-3, rollout=dict(group_size=4, max_new_tokens=24),
               refresh_every=refresh_every)  # fmt: skip
    loop = _loop(tokenizer, cfg)
    _fit(loop, tmp_path)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert records[0]["dpo/accuracy"] == 0.0  # margin 0 while policy == reference
    assert np.mean([r["dpo/accuracy"] for r in records[1:]]) > 0.6
    if refresh_every:  # the logged samples are the policy's own
        reward = [r["reward/mean"] for r in records]
        assert np.mean(reward[-5:]) > np.mean(reward[:5])
    policy = dataclasses.replace(cfg, dpo=dataclasses.replace(cfg.dpo, refresh_every=1))
    after = _loop(tokenizer, policy)
    after.lm.model.load_state_dict(loop.lm.model.state_dict())
    before = _loop(tokenizer, policy)
    steps = range(100, 106)  # rollout batches neither run trained on
    longer = [after.make_pairs(k).stats["completion_len"] for k in steps]
    base = [before.make_pairs(k).stats["completion_len"] for k in steps]
    assert np.mean(longer) > np.mean(base) + 3


def test_config_from_yaml_checks_rounds_and_typos(tmp_path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "rollout: {group_size: 4}\ntrain: {num_steps: 20, save_every: 10}\n"
        "dpo: {beta: 0.2, refresh_every: 5, length_normalize: true}\n"
        "rewards: {components: {asr_wer: {}}}\n"
    )
    cfg = load_config(good, DPOLoopConfig)
    assert cfg.dpo.beta == 0.2 and cfg.dpo.refresh_every == 5 and cfg.dpo.length_normalize
    for text, error in [
        ("dpo: {refresh_every: 3}", "multiples of dpo.refresh_every"),
        ("dpo: {pairs_per_stp: 3}", "dpo.pairs_per_stp"),
        ("train: {grad_accum: 2}", "grad_accum must be 1"),
        ("rollout: {group_size: 1}", "group_size must be >= 2"),
    ]:
        bad = tmp_path / "bad.yaml"
        base = {"rollout": "rollout: {}", "train": "train: {save_every: 10}", "dpo": "dpo: {}"}
        base[text.split(":")[0]] = text
        bad.write_text("\n".join([*base.values(), "rewards: {}"]) + "\n")
        with pytest.raises(ConfigError, match=error):
            load_config(bad, DPOLoopConfig)


@pytest.mark.parametrize("name", ["dpo.yaml", "dpo_mini.yaml", "dpo_debug.yaml"])
def test_template_configs_load(name: str) -> None:
    cfg = load_config(TEMPLATE / name, DPOLoopConfig)
    build_rewards(cfg.rewards, {"scorer": FakeASR()})


def _mean_over_two_ranks(rank: int, root: Path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{root / 'init'}", rank=rank, world_size=2)
    stats = {"dpo/pairs": 2.0 + rank, "loss": 1.0 + 2 * rank}
    (root / f"rank{rank}.json").write_text(json.dumps(mean_over_ranks(stats, 2, ("dpo/pairs",))))
    cleanup()


def test_mean_over_ranks_sums_the_named_counts(tmp_path) -> None:
    mp.start_processes(_mean_over_two_ranks, args=(tmp_path,), nprocs=2, start_method="fork")
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == {
            "dpo/pairs": 5.0, "loss": 2.0
        }  # fmt: skip
    assert mean_over_ranks({"loss": 3.0}, 1) == {"loss": 3.0}
