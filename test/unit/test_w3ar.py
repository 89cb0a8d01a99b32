"""W3AR arithmetic against numbers worked out by hand: word advantages, their spread over the
speech tokens, the loss value and the sign of its gradient; the metric settings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from local_lib.align.attention_metrics import W3ARConfig, attention_metrics
from local_lib.models.asr_reward import HeadAttention
from local_lib.rl.method_spec import find_method
from local_lib.rl.rollout import token_rewards
from local_lib.rl.w3ar import (
    W3ARLossConfig,
    W3ARRewardConfig,
    attention_rewards,
    token_advantages,
    token_means,
    w3ar_loss,
    word_advantages,
)

# One text of two words, two samples (one group). Sample 0 says word 0 in 3 speech tokens and
# word 1 in 1; sample 1 says word 0 in 1 token and word 1 in 4. Word 1 reads alike in both.
WORD_REWARD = torch.tensor([[0.8, 0.5], [0.4, 0.5]])
N_WORDS = torch.tensor([2, 2])
SPANS = torch.tensor([[[0, 3], [3, 4]], [[0, 1], [1, 5]]])
SPEECH = [4, 5]  # speech tokens per sample; the completion adds the end marker
MASK = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)


def test_the_method_is_registered():
    assert find_method("w3ar").family == "codec_lm"


def test_word_advantages_are_centred_over_the_group():
    adv = word_advantages(WORD_REWARD, N_WORDS, group_size=2)
    # mean of word 0: 0.6 -> +0.2, -0.2; word 1: 0.5 -> 0, 0
    torch.testing.assert_close(adv, torch.tensor([[0.2, 0.0], [-0.2, 0.0]]))


def test_without_the_group_step_the_raw_word_rewards_are_the_advantages():
    rewards = torch.tensor([[0.8, 0.5], [0.4, 7.0]])  # 7.0 sits in a padded slot of sample 1
    adv = word_advantages(rewards, torch.tensor([2, 1]), group_size=2, group_relative=False)
    torch.testing.assert_close(adv, torch.tensor([[0.8, 0.5], [0.4, 0.0]]))


def test_padded_word_slots_stay_zero_and_groups_must_share_their_words():
    rewards = torch.tensor([[0.3, 0.0], [0.1, 0.0], [0.9, 0.6], [0.5, 0.2]])
    adv = word_advantages(rewards, torch.tensor([1, 1, 2, 2]), group_size=2)
    want = torch.tensor([[0.1, 0.0], [-0.1, 0.0], [0.2, 0.2], [-0.2, -0.2]])
    torch.testing.assert_close(adv, want)
    with pytest.raises(ValueError, match=r"group 1: its samples have \[2, 1\] words"):
        word_advantages(rewards, torch.tensor([1, 1, 2, 1]), group_size=2)


def test_word_advantages_spread_over_their_tokens_and_the_end_marker_gets_none():
    adv = word_advantages(WORD_REWARD, N_WORDS, group_size=2)
    spread = token_advantages(adv, SPANS, N_WORDS, max(SPEECH))
    torch.testing.assert_close(
        spread, torch.tensor([[0.2, 0.2, 0.2, 0.0, 0.0], [-0.2, 0.0, 0.0, 0.0, 0.0]])
    )
    per_token = token_rewards(spread, MASK)  # the core places them on the completion
    torch.testing.assert_close(
        per_token,
        torch.tensor([[0.2, 0.2, 0.2, 0.0, 0.0, 0.0], [-0.2, 0.0, 0.0, 0.0, 0.0, 0.0]]),
    )


def test_tokens_outside_every_span_get_zero():
    adv = torch.tensor([[1.0, 2.0]])
    spread = token_advantages(adv, torch.tensor([[[1, 2], [2, 2]]]), torch.tensor([2]), 4)
    torch.testing.assert_close(spread, torch.tensor([[0.0, 1.0, 0.0, 0.0]]))


def _per_token_advantages() -> torch.Tensor:
    adv = word_advantages(WORD_REWARD, N_WORDS, group_size=2)
    return token_rewards(token_advantages(adv, SPANS, N_WORDS, max(SPEECH)), MASK)


def test_loss_value_and_gradient_by_hand():
    """CE 1.5 plus -sum_t A_t log pi / 11 tokens (value: -sum_t A_t / 11, the ratio being 1)
    plus gamma times the mean k3 over the 11 tokens."""
    cfg = W3ARLossConfig(gamma=0.1, ce_weight=1.0, loss_type="dapo")
    logp = torch.full(MASK.shape, math.log(0.5), requires_grad=True)
    ref_logp = torch.full(MASK.shape, math.log(0.25))  # ref / pi = 0.5 on every token
    ce = torch.tensor(1.5, requires_grad=True)
    loss, stats = w3ar_loss(
        logp, MASK, _per_token_advantages(), ce, cfg.ce_weight, cfg.policy_gradient(6),
        ref_logp=ref_logp,
    )  # fmt: skip
    k3 = 0.5 - math.log(0.5) - 1.0
    assert float(loss.detach()) == pytest.approx(1.5 - (0.6 - 0.2) / 11 + 0.1 * k3, abs=1e-6)
    assert stats["kl"] == pytest.approx(k3, abs=1e-6) and stats["sft_ce"] == 1.5
    loss.backward()
    assert float(ce.grad) == 1.0
    # per token: d/dlogp of -A e^(logp - sg(logp)) is -A; of 0.1 k3 it is 0.1 (1 - ref / pi)
    expected = (-_per_token_advantages() + 0.1 * (1 - 0.5)) * MASK / 11
    torch.testing.assert_close(logp.grad, expected)


def test_gradient_descent_raises_the_better_word_and_lowers_the_worse():
    cfg = W3ARLossConfig(gamma=0.0, ce_weight=0.0)
    logp = torch.zeros(MASK.shape, requires_grad=True)
    loss, stats = w3ar_loss(
        logp, MASK, _per_token_advantages(), torch.tensor(0.0), cfg.ce_weight,
        cfg.policy_gradient(6),
    )  # fmt: skip
    assert "kl" not in stats
    loss.backward()
    step = -logp.grad  # the direction of a descent step
    assert (step[0, :3] > 0).all()  # sample 0's word 0 beat the group: more likely
    assert step[1, 0] < 0  # sample 1's word 0 fell short: less likely
    assert (step[0, 3:] == 0).all() and (step[1, 1:] == 0).all()  # zero advantage: untouched


def test_metrics_config_window_from_the_frame_shift_and_the_ablation_weights():
    espnet = W3ARRewardConfig().metrics_config(frame_shift_s=0.04, speech_token_rate=31.25)
    assert (espnet.window, espnet.asr_frame_rate, espnet.speech_token_rate) == (3, 25.0, 31.25)
    assert (espnet.purity_weight, espnet.monotonicity_weight, espnet.beta) == (0.5, 0.5, 0.1)
    assert W3ARRewardConfig().metrics_config(0.02, 25.0).window == 6
    no_purity = W3ARRewardConfig(use_purity=False).metrics_config(0.04, 25.0)
    assert (no_purity.purity_weight, no_purity.monotonicity_weight) == (0.0, 1.0)
    no_mono = W3ARRewardConfig(use_monotonicity=False).metrics_config(0.04, 25.0)
    assert (no_mono.purity_weight, no_mono.monotonicity_weight) == (1.0, 0.0)
    with pytest.raises(ValueError, match="no reward is left"):
        W3ARRewardConfig(use_purity=False, use_monotonicity=False)


def test_attention_rewards_average_the_heads_then_run_the_kernel():
    """Two heads of one sample: their mean, renormalised, is what the kernel reads."""
    rng = np.random.default_rng(0)
    weights = rng.random((2, 4, 7)).astype(np.float32)
    words = np.array([0, 0, -1, 1])
    att = HeadAttention(["a", "b", " ", "c"], words, [(0, 1), (1, 0)], weights, 0.04)
    cfg = W3ARConfig(window=2, asr_frame_rate=25.0, speech_token_rate=12.5)
    got = attention_rewards([att], [3], cfg)
    mean = weights.mean(axis=0)
    mean /= mean.sum(axis=1, keepdims=True)
    want = attention_metrics(mean[None], [4], [7], words[None], [3], cfg)
    np.testing.assert_allclose(got.word_reward, want.word_reward, rtol=1e-6)
    np.testing.assert_array_equal(got.word_span, want.word_span)
    assert got.word_span[0, -1, 1] == 3  # the spans cover the sample's 3 speech tokens


def test_token_means_leave_out_the_first_tokens_monotonicity():
    attention = np.zeros((2, 3, 30), np.float32)
    for t, frame in enumerate((0, 10, 15)):
        attention[0, t, frame] = 1.0  # peaks step by 10 then 5 frames
    attention[1, :, 4] = 1.0  # one token only
    cfg = W3ARConfig(window=0, beta=0.1)
    metrics = attention_metrics(attention, [3, 1], [30, 30], np.full((2, 3), -1), [0, 0], cfg)
    purity, monotonicity = token_means(metrics, np.array([3, 1]))
    np.testing.assert_allclose(purity, [1.0, 1.0])
    np.testing.assert_allclose(monotonicity, [(math.tanh(1.0) + math.tanh(0.5)) / 2, 0.0])
