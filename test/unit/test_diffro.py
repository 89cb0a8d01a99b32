"""DiffRO on a tiny codec LM and a tiny Token2Text: the loss's gradient through the soft tokens
against finite differences, the exact KL against a direct sum, the MTR weighting by hand, a
reachable reward that rises, resume, and the checks made before any sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_soft_tokens import float64_norms  # noqa: F401 (the fixture, used by name)

from local_lib.data.features import LogMelConfig
from local_lib.data.speech_tokens import PromptPool
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.asr_units import AsrUnits
from local_lib.models.codec_lm import CodecLM
from local_lib.models.soft_tokens import DISALLOWED_LOGPROB
from local_lib.models.speech_tokenizer import KMeansMelTokenizer, SpeechTokenizerConfig
from local_lib.models.token2text import Token2Text, Token2TextConfig
from local_lib.rl.diffro import (
    DiffROLossConfig,
    DiffRORewardConfig,
    combine_rewards,
    diffro_loss,
    exact_kl,
    masked_mean,
)
from local_lib.rl.diffro_loop import DiffROLoop, DiffROLoopConfig, noise_seed
from local_lib.rl.method_spec import find_method
from local_lib.rl.rollout import RolloutConfig, SpeechRenderer, rollout_seed
from local_lib.train.config import TrainSection
from local_lib.train.trainer import Trainer, TrainerConfig, read_metrics

TINY_LM = {
    "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 128,
}  # fmt: skip
NUM_SPEECH = 8
MEL = LogMelConfig(n_fft=256, win_length=256, hop_length=64, n_mels=16, f_max=8000.0)
TEXTS = {"a_1": "the cat", "a_2": "a mat", "b_1": "on the mat", "b_2": "the cat sat"}


@pytest.fixture(scope="module")
def renderer() -> SpeechRenderer:
    """Rollouts want one; DiffRO never renders with it."""
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(40, MEL.n_mels)).astype(np.float32) for _ in range(4)]
    cfg = SpeechTokenizerConfig(num_tokens=NUM_SPEECH, kmeans_iters=2, decoder_channels=4,
                                decoder_layers=1, decoder_steps=1)  # fmt: skip
    return SpeechRenderer(KMeansMelTokenizer.train(feats, cfg, MEL), 2, 0.05)


def _lm(dtype: torch.dtype = torch.float32) -> CodecLM:
    torch.manual_seed(0)
    lm = CodecLM.from_config(TINY_LM, CharTokenizer.build(TEXTS.values()), NUM_SPEECH)
    lm.model.to(dtype)
    return lm


def _pool() -> PromptPool:
    """Two speakers, and a "style" label every utterance shares (a reward the policy can reach)."""
    utt2spk = {u: u[0] for u in TEXTS}
    tokens = {u: [1, 2, 3, i] for i, u in enumerate(TEXTS)}
    labels = {"speaker": utt2spk, "style": {u: "x" for u in TEXTS}}
    return PromptPool(dict(TEXTS), utt2spk, tokens, "fake", labels)


def _token2text(dtype: torch.dtype = torch.float32) -> Token2Text:
    torch.manual_seed(1)
    cfg = Token2TextConfig(embed_dim=6, channels=8, conv_layers=2, upsample=3, dropout=0.0)
    labels = {"speaker": ["a", "b"], "style": ["x", "y"]}
    model = Token2Text.build(cfg, NUM_SPEECH, AsrUnits.from_texts(TEXTS.values()), labels)
    model.net.to(dtype).eval()
    return model


def _cfg(beta: float = 0.1, mtr: dict | None = None, **loss) -> DiffROLoopConfig:
    return DiffROLoopConfig(
        rollout=RolloutConfig(group_size=2, prompts_per_step=2, max_new_tokens=8),
        train=TrainSection(num_steps=2, lr=1e-2, save_every=1, log_every=1),
        loss=DiffROLossConfig(beta=beta, **loss),
        reward=DiffRORewardConfig(mtr=mtr or {}),
    )


def _loop(renderer, cfg: DiffROLoopConfig, dtype=torch.float32, t2t=None) -> DiffROLoop:
    return DiffROLoop(_lm(dtype), renderer, t2t or _token2text(dtype), _pool(), cfg, seed=5)


def test_method_spec() -> None:
    assert find_method("diffro").family == "codec_lm"


@pytest.mark.usefixtures("float64_norms")
@pytest.mark.parametrize(("beta", "mtr"), [(0.0, {}), (0.3, {"speaker": 0.7, "style": 2.0})])
def test_loss_gradient_matches_finite_differences(renderer, beta, mtr) -> None:
    loop = _loop(renderer, _cfg(beta, mtr), torch.float64)
    batch = loop.batch(0)
    model = loop.lm.model
    with torch.no_grad():  # move off the reference, where the KL's gradient would be 0
        gen = torch.Generator().manual_seed(9)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))

    def loss() -> torch.Tensor:
        return loop.loss(loop.policy, batch)[0]

    speech = loop.lm.layout.speech_offset
    params = [
        (model.model.layers[0].self_attn.v_proj.weight, [(0, 0), (3, 5), (7, 15)]),
        (model.model.embed_tokens.weight, [(speech + 2, 1), (speech + 5, 9)]),
        (model.lm_head.weight, [(speech + 1, 3), (speech + 6, 0)]),
    ]
    grads = torch.autograd.grad(loss(), [p for p, _ in params])
    eps = 1e-6
    for (weight, entries), grad in zip(params, grads, strict=True):
        assert grad.abs().sum() > 0
        for entry in entries:
            with torch.no_grad():
                original = weight[entry].item()
                weight[entry] = original + eps
                plus = loss().item()
                weight[entry] = original - eps
                minus = loss().item()
                weight[entry] = original
            numeric = (plus - minus) / (2 * eps)
            assert grad[entry].item() == pytest.approx(numeric, rel=1e-5, abs=1e-9), entry


def test_exact_kl_is_the_direct_sum_over_the_allowed_vocabulary() -> None:
    gen = torch.Generator().manual_seed(0)
    allowed = torch.tensor([2, 3, 5, 6])
    policy = torch.full((2, 3, 7), DISALLOWED_LOGPROB, dtype=torch.float64)
    ref = policy.clone()
    p_logits = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    q_logits = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    policy[..., allowed] = torch.log_softmax(p_logits, -1)
    ref[..., allowed] = torch.log_softmax(q_logits, -1)
    kl = exact_kl(policy, ref)
    for b in range(2):
        for t in range(3):
            p, q = torch.softmax(p_logits[b, t], -1), torch.softmax(q_logits[b, t], -1)
            direct = sum(float(p[k] * (p[k].log() - q[k].log())) for k in range(4))
            assert kl[b, t].item() == pytest.approx(direct, rel=1e-12)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert masked_mean(kl, mask).item() == pytest.approx(float(kl[0, 0] + kl[0, 1] + kl[1, 0]) / 3)
    rewards = torch.tensor([1.0, -2.0], dtype=torch.float64)
    loss, stats = diffro_loss(rewards, kl, mask, beta=0.25)
    assert loss.item() == pytest.approx(0.5 + 0.25 * float(masked_mean(kl, mask)))
    assert stats["kl"] == pytest.approx(float(masked_mean(kl, mask)))
    with pytest.raises(ValueError, match="reference"):
        diffro_loss(rewards, None, mask, beta=0.25)


def test_the_loop_kl_is_zero_at_the_start_and_the_direct_sum_after_a_change(renderer) -> None:
    loop = _loop(renderer, _cfg(beta=0.5))
    batch = loop.batch(0)
    _, stats = loop.loss(loop.policy, batch)
    assert stats["kl"] == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        loop.lm.model.lm_head.weight.mul_(1.5)
    _, stats = loop.loss(loop.policy, batch)
    ro = batch.scored.rollout
    with torch.no_grad():
        args = (batch.scored.prompts, ro.completion_ids, ro.mask)
        _, p = loop.lm.completion_logprobs(*args, return_logits=True)
        _, q = loop.reference.completion_logprobs(*args, return_logits=True)
    allowed = p[ro.mask].exp().sum(0) > 0
    direct = torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=p[ro.mask][:, allowed]),
        torch.distributions.Categorical(logits=q[ro.mask][:, allowed]),
    )
    assert stats["kl"] == pytest.approx(float(direct.mean()), rel=1e-4) and stats["kl"] > 0


def test_mtr_weighting_by_hand(renderer) -> None:
    text = torch.tensor([-1.0, -2.0])
    labels = {"speaker": torch.tensor([-0.5, -0.25]), "style": torch.tensor([-3.0, -1.0])}
    total = combine_rewards(text, labels, {"speaker": 0.5, "style": 2.0})
    assert total.tolist() == pytest.approx([-1.0 - 0.25 - 6.0, -2.0 - 0.125 - 2.0])
    assert combine_rewards(text, labels, {}).tolist() == text.tolist()
    with pytest.raises(KeyError, match="gender"):
        combine_rewards(text, labels, {"gender": 1.0})
    # in the loop: the logged total is the text term plus the weighted label terms
    loop = _loop(renderer, _cfg(beta=0.0, mtr={"speaker": 0.5, "style": 2.0}))
    _, stats = loop.loss(loop.policy, loop.batch(0))
    expected = stats["reward/text"] + 0.5 * stats["reward/speaker"] + 2.0 * stats["reward/style"]
    assert stats["reward/total"] == pytest.approx(expected, rel=1e-6)
    assert "kl" not in stats and loop.reference is None


def _style_token2text() -> Token2Text:
    """Text reward flat (the CTC head outputs one distribution), and a style head whose log P("x")
    grows with the soft mass on speech token 3: embedding of 3 = e_0, others 0, logit_x = 4 x_0."""
    cfg = Token2TextConfig(embed_dim=4, channels=4, conv_layers=0, upsample=3, dropout=0.0)
    labels = {"speaker": ["a", "b"], "style": ["x", "y"]}
    model = Token2Text.build(cfg, NUM_SPEECH, AsrUnits.from_texts(TEXTS.values()), labels)
    with torch.no_grad():
        for p in model.net.parameters():
            p.zero_()
        model.net.embed.weight[3, 0] = 1.0
        model.net.proj.weight.copy_(torch.eye(4))
        model.net.heads["style"].weight[0, 0] = 4.0
    model.net.eval()
    return model


def _fit(loop: DiffROLoop, out_dir: Path, num_steps: int) -> Trainer:
    opt = torch.optim.AdamW(loop.policy.parameters(), lr=loop.cfg.train.lr)
    tcfg = TrainerConfig(out_dir=out_dir, num_steps=num_steps, save_every=1, log_every=1)
    trainer = Trainer(loop.policy, opt, tcfg)
    trainer.fit(loop.loss, loop.batch)
    return trainer


def test_a_reachable_reward_rises(renderer, tmp_path) -> None:
    loop = _loop(renderer, _cfg(beta=0.0, mtr={"style": 1.0}), t2t=_style_token2text())
    _fit(loop, tmp_path, 12)
    records = read_metrics(tmp_path / "metrics.jsonl")
    style = [r["reward/style"] for r in records]
    assert np.mean(style[-3:]) > np.mean(style[:3]) + 0.1, style
    assert {"t2t_wer", "entropy", "infeasible_frac", "time/generate", "time/reward"} <= set(
        records[0]
    )
    assert not loop.lm.model.training  # dropout stays off although the Trainer calls train()


def test_checkpoint_resume_gives_the_same_next_step(renderer, tmp_path) -> None:
    cfg = _cfg(beta=0.2, mtr={"speaker": 1.0})
    whole = _loop(renderer, cfg)
    _fit(whole, tmp_path / "whole", 2)
    _fit(_loop(renderer, cfg), tmp_path / "split", 1)
    resumed = _loop(renderer, cfg)  # a new process: base weights, then the checkpoint
    assert _fit(resumed, tmp_path / "split", 2).step == 2
    for a, b in zip(whole.lm.model.parameters(), resumed.lm.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    want = read_metrics(tmp_path / "whole" / "metrics.jsonl")[-1]
    got = read_metrics(tmp_path / "split" / "metrics.jsonl")[-1]
    for key in ("loss", "reward/total", "reward/speaker", "kl", "entropy"):
        assert got[key] == want[key], key


def test_noise_depends_on_seed_index_and_rank_only() -> None:
    seeds = {noise_seed(5, i, r) for i in range(3) for r in range(2)}
    assert len(seeds) == 6 and noise_seed(5, 1, 0) == noise_seed(5, 1, 0)
    assert noise_seed(5, 1, 0) != rollout_seed(5, 1, 0)


def test_straight_through_and_soft_share_samples_but_not_rewards(renderer) -> None:
    soft = _loop(renderer, _cfg(beta=0.0))
    hard = _loop(renderer, _cfg(beta=0.0, straight_through=True))
    a, b = soft.batch(0), hard.batch(0)
    assert torch.equal(a.scored.rollout.completion_ids, b.scored.rollout.completion_ids)
    soft_text = soft.loss(soft.policy, a)[1]["reward/text"]
    assert soft_text != hard.loss(hard.policy, b)[1]["reward/text"]


def test_given_rollout_straight_through_scores_the_rollouts_own_tokens(renderer) -> None:
    loop = _loop(renderer, _cfg(beta=0.0, straight_through=True, given_rollout=True))
    batch = loop.batch(0)
    ro, texts = batch.scored.rollout, batch.scored.references.texts
    _, stats = loop.loss(loop.policy, batch)
    one_hot = torch.zeros(*ro.completion_ids.shape, NUM_SPEECH)
    for row, tokens in zip(one_hot, ro.speech_tokens, strict=True):
        row[torch.arange(len(tokens)), tokens] = 1.0
    lens = torch.tensor([len(t) for t in ro.speech_tokens])
    with torch.no_grad():
        drawn = loop.reward_model.text_logp(loop.reward_model.run_probs(one_hot, lens), texts)
    assert stats["reward/text"] == pytest.approx(drawn.values.mean().item(), rel=1e-5)
    # fresh noise draws other tokens at some positions, so its reward is another one
    fresh = _loop(renderer, _cfg(beta=0.0, straight_through=True))
    assert fresh.loss(fresh.policy, fresh.batch(0))[1]["reward/text"] != stats["reward/text"]


def test_labels_are_checked_before_any_sampling(renderer) -> None:
    with pytest.raises(ValueError, match="heads"):
        _loop(renderer, _cfg(mtr={"emotion": 1.0}))
    pool = _pool()
    unseen = PromptPool(pool.texts, pool.utt2spk, pool.tokens, "fake",
                        {"speaker": {u: "z" for u in pool.texts}})  # fmt: skip
    with pytest.raises(ValueError, match="never saw"):
        DiffROLoop(_lm(), renderer, _token2text(), unseen, _cfg(mtr={"speaker": 1.0}), seed=0)
    no_labels = PromptPool(pool.texts, pool.utt2spk, pool.tokens, "fake", {})
    with pytest.raises(ValueError, match="prompt data dir"):
        DiffROLoop(_lm(), renderer, _token2text(), no_labels, _cfg(mtr={"style": 1.0}), seed=0)
    with pytest.raises(ValueError, match="must be a number"):
        DiffRORewardConfig(mtr={"speaker": "high"})
    with pytest.raises(ValueError, match="tau"):
        DiffROLossConfig(tau=0.0)
