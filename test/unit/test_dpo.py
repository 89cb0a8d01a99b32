"""DPO arithmetic against numbers worked out by hand: pairs (ties, the minimum gap), the loss
(beta, sum or length-normalised, the SFT term, label smoothing) and its gradient's sign."""

import math

import pytest
import torch

from local_lib.rl.dpo import DPOConfig, dpo_loss, preference_pairs, sequence_logprobs

# Four texts of N = 4 samples, group-major (rows 0-3 are text 0, ...):
# text 0: best 0.5 at rows 1 and 2 -> the first, row 1; worst 0.125 at row 3; gap 0.375
# text 1: best 0.5 at rows 4 and 6 -> row 4; worst 0 at rows 5 and 7 -> the last, row 7; gap 0.5
# text 2: all equal: no pair, whatever the minimum gap
# text 3: best 0.25 at row 13, worst 0 at row 12; gap 0.25
REWARDS = torch.tensor([
    0.25, 0.5, 0.5, 0.125,
    0.5, 0.0, 0.5, 0.0,
    0.375, 0.375, 0.375, 0.375,
    0.0, 0.25, 0.125, 0.0625,
])  # fmt: skip


def test_pairs_break_ties_by_position_and_skip_tied_texts() -> None:
    pairs = preference_pairs(REWARDS, group_size=4, min_gap=0.0)
    assert pairs.chosen == [1, 4, 13] and pairs.rejected == [3, 7, 12] and pairs.skipped == [2]


def test_pairs_need_the_minimum_gap() -> None:
    at_gap = preference_pairs(REWARDS, group_size=4, min_gap=0.25)  # text 3's gap is exactly 0.25
    assert at_gap.chosen == [1, 4, 13] and at_gap.skipped == [2]
    above = preference_pairs(REWARDS, group_size=4, min_gap=0.4)
    assert above.chosen == [4] and above.rejected == [7] and above.skipped == [0, 2, 3]
    none = preference_pairs(REWARDS, group_size=4, min_gap=1.0)
    assert none.chosen == [] and none.skipped == [0, 1, 2, 3]


def test_pairs_reject_bad_shapes() -> None:
    with pytest.raises(ValueError, match="group_size"):
        preference_pairs(torch.ones(5), group_size=2, min_gap=0.0)
    with pytest.raises(ValueError, match="group_size"):
        preference_pairs(torch.ones(4), group_size=1, min_gap=0.0)


# Two pairs in the halves layout: rows 0, 1 chosen; rows 2, 3 rejected (pair i: rows i, 2 + i).
# Padding (mask 0) holds -9 so a sum that read it would be visibly wrong.
MASK = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]], dtype=torch.bool)
LOGP = torch.tensor([[-1.0, -2.0, -9.0], [-1.0, -1.0, -1.0], [-2.0, -9.0, -9.0], [-3.0, -1, -9]])
REF = torch.tensor([[-1.5, -2.0, -9.0], [-1.0, -2.0, -1.0], [-1.0, -9.0, -9.0], [-2.0, -1, -9]])
# sums: policy [-3, -3, -2, -4], reference [-3.5, -4, -1, -3]
#   log-ratios: chosen [0.5, 1], rejected [-1, -1]; h = [1.5, 2]
# means: policy [-1.5, -1, -2, -2], reference [-1.75, -4/3, -1, -1.5]
#   log-ratios: chosen [0.25, 1/3], rejected [-1, -0.5]; h = [1.25, 5/6]


def _nls(m: float) -> float:
    """-log sigmoid(m) = log(1 + exp(-m))."""
    return math.log1p(math.exp(-m))


def test_loss_with_summed_log_probs() -> None:
    loss, stats = dpo_loss(LOGP, REF, MASK, DPOConfig(beta=0.5))
    margins = [0.5 * 1.5, 0.5 * 2.0]
    want = (_nls(margins[0]) + _nls(margins[1])) / 2  # 0.350066...
    assert float(loss) == pytest.approx(want, rel=1e-6)
    assert float(loss) == pytest.approx(0.350066, abs=1e-6)
    assert stats["dpo/margin"] == pytest.approx(0.875)
    assert stats["dpo/chosen_logratio"] == pytest.approx(0.75)
    assert stats["dpo/rejected_logratio"] == pytest.approx(-1.0)
    assert stats["dpo/accuracy"] == 1.0
    assert stats["dpo/chosen_nll"] == pytest.approx(6 / 5)  # chosen tokens -1 -2 -1 -1 -1


def test_loss_with_length_normalised_log_probs() -> None:
    loss, stats = dpo_loss(LOGP, REF, MASK, DPOConfig(beta=0.5, length_normalize=True))
    margins = [0.5 * 1.25, 0.5 * 5 / 6]
    want = (_nls(margins[0]) + _nls(margins[1])) / 2
    assert float(loss) == pytest.approx(want, rel=1e-6)
    assert stats["dpo/chosen_logratio"] == pytest.approx((0.25 + 1 / 3) / 2)
    assert stats["dpo/rejected_logratio"] == pytest.approx(-0.75)
    torch.testing.assert_close(
        sequence_logprobs(LOGP, MASK, mean=True), torch.tensor([-1.5, -1.0, -2.0, -2.0])
    )


def test_sft_term_adds_the_chosen_nll_per_token() -> None:
    plain, _ = dpo_loss(LOGP, REF, MASK, DPOConfig(beta=0.5))
    rpo, _ = dpo_loss(LOGP, REF, MASK, DPOConfig(beta=0.5, sft_weight=0.1))
    assert float(rpo - plain) == pytest.approx(0.1 * 6 / 5, rel=1e-6)


def test_label_smoothing_weights_the_reversed_preference() -> None:
    loss, _ = dpo_loss(LOGP, REF, MASK, DPOConfig(beta=0.5, label_smoothing=0.1))
    want = sum(0.9 * _nls(m) + 0.1 * _nls(-m) for m in (0.75, 1.0)) / 2
    assert float(loss) == pytest.approx(want, rel=1e-6)


def test_accuracy_counts_pairs_the_policy_already_prefers() -> None:
    swapped = torch.cat([LOGP[[0, 3]], LOGP[[2, 1]]])  # pair 1 now has h < 0
    ref = torch.cat([REF[[0, 3]], REF[[2, 1]]])
    mask = torch.cat([MASK[[0, 3]], MASK[[2, 1]]])
    _, stats = dpo_loss(swapped, ref, mask, DPOConfig(beta=1.0))
    assert stats["dpo/accuracy"] == 0.5  # h = [1.5, -2]
    assert stats["dpo/margin"] == pytest.approx(-0.25)


def test_gradient_raises_chosen_and_lowers_rejected_log_probs() -> None:
    for cfg in (DPOConfig(beta=0.5), DPOConfig(beta=0.5, length_normalize=True, sft_weight=1.0)):
        logp = LOGP.clone().requires_grad_(True)
        loss, _ = dpo_loss(logp, REF, MASK, cfg)
        loss.backward()
        grad = logp.grad
        # gradient descent moves logp against the gradient: chosen up, rejected down
        assert (grad[:2][MASK[:2]] < 0).all() and (grad[2:][MASK[2:]] > 0).all()
        assert (grad[~MASK] == 0).all()


def test_loss_rejects_mismatched_shapes_and_bad_settings() -> None:
    with pytest.raises(ValueError, match="2P, T"):
        dpo_loss(LOGP[:3], REF[:3], MASK[:3], DPOConfig())
    with pytest.raises(ValueError, match="beta"):
        DPOConfig(beta=0.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        DPOConfig(label_smoothing=0.5)
    with pytest.raises(ValueError, match="refresh_every"):
        DPOConfig(refresh_every=-1)
