"""GRPO math against numbers worked out by hand on a two-sequence batch."""

import math

import pytest
import torch

from local_lib.rl.grpo import (
    GRPOConfig,
    aggregate,
    apply_length_penalty,
    apply_truncation_penalty,
    group_advantages,
    grpo_loss,
    k3_kl,
    per_token_loss,
    token_entropy,
)

REWARDS = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])  # two groups of G = 3


def test_group_advantages_group_scaling() -> None:
    # group 0: mean 2, unbiased std sqrt((1 + 0 + 1) / 2) = 1; group 1: all equal -> A = 0
    adv = group_advantages(REWARDS, group_size=3)
    want = torch.tensor([-1 / 1.0001, 0.0, 1 / 1.0001, 0.0, 0.0, 0.0])
    torch.testing.assert_close(adv.values, want)
    assert adv.zero_std_groups == 1


def test_group_advantages_batch_and_no_scaling() -> None:
    # batch mean 3.5; squared deviations 6.25+2.25+0.25+3*2.25 = 15.5; unbiased var 15.5/5 = 3.1
    batch = group_advantages(REWARDS, group_size=3, scale="batch")
    std = math.sqrt(3.1)
    want = torch.tensor([-1 / (std + 1e-4), 0.0, 1 / (std + 1e-4), 0.0, 0.0, 0.0])
    torch.testing.assert_close(batch.values, want)
    none = group_advantages(REWARDS, group_size=3, scale="none")
    torch.testing.assert_close(none.values, torch.tensor([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0]))


def test_group_advantages_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.ones(5), group_size=2)


# Clip-active batch: mask [[1,1,1],[1,1,0]], A = [+1, -1], eps = 0.2.
# seq 0: rho = [1, 1.5, 0.5]; rho*A = [1, 1.5, 0.5]; clip(rho)*A = [1, 1.2, 0.8]
#        min = [1, 1.2, 0.5] -> loss [-1, -1.2, -0.5]  (token 1 clipped: rho > 1.2, A > 0)
# seq 1: rho = [0.5, 1.5, 3 (padding)]; rho*A = [-0.5, -1.5]; clip(rho)*A = [-0.8, -1.2]
#        min = [-0.8, -1.5] -> loss [0.8, 1.5]        (token 0 clipped: rho < 0.8, A < 0)
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])
ADV = torch.tensor([1.0, -1.0])
RATIO = torch.tensor([[1.0, 1.5, 0.5], [0.5, 1.5, 3.0]])
LOGP = torch.full((2, 3), -2.0)
OLD = LOGP - torch.log(RATIO)


def test_per_token_loss_with_clipping() -> None:
    loss, clip = per_token_loss(LOGP, ADV, 0.2, old_logp=OLD)
    torch.testing.assert_close(loss[0], torch.tensor([-1.0, -1.2, -0.5]))
    torch.testing.assert_close(loss[1, :2], torch.tensor([0.8, 1.5]))
    assert clip.tolist() == [[False, True, False], [True, False, False]]


@pytest.mark.parametrize(
    "loss_type, max_len, want",
    [
        ("grpo", None, ((-1 - 1.2 - 0.5) / 3 + (0.8 + 1.5) / 2) / 2),  # (-0.9 + 1.15) / 2
        ("dapo", None, (-2.7 + 2.3) / 5),  # token sum / 5 tokens
        ("dr_grpo", None, (-2.7 + 2.3) / (2 * 3)),  # / (B * padded width)
        ("dr_grpo", 4, (-2.7 + 2.3) / (2 * 4)),  # / (B * max_completion_length)
    ],
)
def test_aggregation_modes(loss_type: str, max_len: int | None, want: float) -> None:
    cfg = GRPOConfig(loss_type=loss_type, max_completion_length=max_len)
    loss, stats = grpo_loss(LOGP, MASK, ADV, cfg, old_logp=OLD)
    assert loss.item() == pytest.approx(want, abs=1e-6)
    assert stats["clip_fraction"] == pytest.approx(2 / 5)
    assert "kl" not in stats


def test_clip_inactive_on_policy_gradient() -> None:
    # old_logp=None: rho = 1 everywhere, loss per token = -A; A = [2, -1]
    # grpo: (-2 + 1) / 2 = -0.5; dapo: (3 * -2 + 2 * 1) / 5 = -0.8, d/dlogp = -A / 5
    logp = torch.zeros(2, 3, requires_grad=True)
    adv = torch.tensor([2.0, -1.0])
    grpo, stats = grpo_loss(logp, MASK, adv, GRPOConfig(loss_type="grpo"))
    assert grpo.item() == pytest.approx(-0.5)
    assert stats["clip_fraction"] == 0.0
    dapo, _ = grpo_loss(logp, MASK, adv, GRPOConfig(loss_type="dapo"))
    assert dapo.item() == pytest.approx(-0.8)
    dapo.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.4, -0.4, -0.4], [0.2, 0.2, 0.0]]))


def test_per_token_advantages_reach_the_loss() -> None:
    # on-policy (rho = 1): loss per token = -A_t. A = [[2, 0, -1], [1, 3, *]] (the padded
    # position's advantage must not count). dapo: (-2 + 0 + 1 - 1 - 3) / 5 = -1.0, and
    # d loss / d logp_t = -A_t / 5 on real tokens, 0 on padding.
    logp = torch.zeros(2, 3, requires_grad=True)
    adv = torch.tensor([[2.0, 0.0, -1.0], [1.0, 3.0, 100.0]])
    loss, _ = grpo_loss(logp, MASK, adv, GRPOConfig(loss_type="dapo"))
    assert loss.item() == pytest.approx(-1.0)
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.4, 0.0, 0.2], [-0.2, -0.6, 0.0]]))
    # a [B] advantage equals the same value on every token
    per_seq, _ = grpo_loss(LOGP, MASK, ADV, GRPOConfig(), old_logp=OLD)
    spread, _ = grpo_loss(LOGP, MASK, ADV[:, None].expand(2, 3), GRPOConfig(), old_logp=OLD)
    assert spread.item() == pytest.approx(per_seq.item(), abs=1e-7)
    # clipping is per token: with rho = 1.5 everywhere, a positive token advantage is clipped
    # (1.2 A), a negative one is not (1.5 A): grpo mean of [-1.2*1, -1.5*-1] = 0.15 in row 0
    old = torch.full((1, 2), -math.log(1.5))
    clipped, stats = grpo_loss(
        torch.zeros(1, 2), torch.ones(1, 2, dtype=torch.bool), torch.tensor([[1.0, -1.0]]),
        GRPOConfig(loss_type="grpo"), old_logp=old,
    )  # fmt: skip
    assert clipped.item() == pytest.approx((-1.2 + 1.5) / 2)
    assert stats["clip_fraction"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="shape mismatch"):
        grpo_loss(logp, MASK, torch.zeros(2, 4), GRPOConfig())


def test_beta_positive_adds_k3() -> None:
    # ref - logp = [[ln2, 0, 0], [-ln2, 0, *]]: k3(ln2) = 2 - ln2 - 1 = 0.306853,
    # k3(-ln2) = 0.5 + ln2 - 1 = 0.193147; sum over real tokens = 0.5
    # dapo with A = [2, -1], beta = 0.1: (-4 + 0.1 * 0.5) / 5 = -0.79; KL mean = 0.5 / 5 = 0.1
    logp = torch.zeros(2, 3)
    ref = torch.tensor([[math.log(2), 0.0, 0.0], [-math.log(2), 0.0, 5.0]])
    torch.testing.assert_close(
        k3_kl(logp, ref)[:, 0], torch.tensor([1 - math.log(2), math.log(2) - 0.5])
    )
    cfg = GRPOConfig(loss_type="dapo", beta=0.1)
    loss, stats = grpo_loss(logp, MASK, torch.tensor([2.0, -1.0]), cfg, ref_logp=ref)
    assert loss.item() == pytest.approx(-0.79, abs=1e-6)
    assert stats["kl"] == pytest.approx(0.1, abs=1e-6)


def test_beta_zero_needs_no_reference_and_beta_positive_does() -> None:
    logp = torch.zeros(2, 3)
    loss, _ = grpo_loss(logp, MASK, ADV, GRPOConfig(beta=0.0), ref_logp=None)
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="reference"):
        grpo_loss(logp, MASK, ADV, GRPOConfig(beta=0.1), ref_logp=None)


def test_truncation_penalty_and_entropy() -> None:
    out = apply_truncation_penalty(torch.tensor([1.0, 1.0]), torch.tensor([True, False]), 0.5)
    torch.testing.assert_close(out, torch.tensor([1.0, 0.5]))
    uniform = torch.zeros(2, 3, 4)
    torch.testing.assert_close(token_entropy(uniform), torch.full((2, 3), math.log(4)))
    _, stats = grpo_loss(torch.zeros(2, 3), MASK, ADV, GRPOConfig(), logits=uniform)
    assert stats["entropy"] == pytest.approx(math.log(4))


def test_config_and_aggregate_validation() -> None:
    with pytest.raises(ValueError, match="loss_type"):
        GRPOConfig(loss_type="sum")
    with pytest.raises(ValueError, match="loss_type"):
        aggregate(torch.zeros(1, 1), torch.ones(1, 1), "mean")


def test_length_penalty_by_hand() -> None:
    # expected 10 tokens, tolerance 0.5 (free band 6.67..15), penalty 2 per unit of log excess
    out = apply_length_penalty(
        torch.ones(4), torch.tensor([10, 4, 30, 0]), torch.full((4,), 10.0), 2.0, 0.5
    )
    # 4/10: 2 (0.916291 - 0.405465); 30/10: 2 (1.098612 - 0.405465); 0 counts as 1 token
    expected = torch.tensor([1.0, 1 - 1.021651, 1 - 1.386294, 1 - 3.794240])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert torch.equal(
        apply_length_penalty(
            torch.ones(2), torch.tensor([7, 14]), torch.full((2,), 10.0), 2.0, 0.5
        ),
        torch.ones(2),
    )
