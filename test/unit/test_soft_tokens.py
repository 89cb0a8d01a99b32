"""Gumbel-softmax soft tokens on the codec LM: gradients against finite differences, the
policy distribution against teacher forcing, the noise and the restriction."""

from collections.abc import Callable

import numpy as np
import pytest
import torch
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.codec_lm import CodecLM
from local_lib.models.soft_tokens import (
    SoftRollout,
    gumbel_noise,
    gumbel_noise_given_choice,
    gumbel_softmax,
    speech_vocab_ids,
)

TINY = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 128,
}
NUM_SPEECH = 10


def _tiny_lm(positions: str = "sequential", dtype: torch.dtype = torch.float32) -> CodecLM:
    torch.manual_seed(0)
    lm = CodecLM.from_config(TINY, CharTokenizer.build(["ab c"]), NUM_SPEECH, positions=positions)
    lm.model.to(dtype).eval()
    return lm


def _prompts(lm: CodecLM) -> list[list[int]]:
    """Two prompts of different lengths (left padding), one with prompt text and speech."""
    return [lm.prompt_ids("abc"), lm.prompt_ids("a", prompt_text="c b", prompt_speech=[2, 3])]


def _gen(seed: int = 3) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _check_gradient(
    lm: CodecLM, value: Callable[[], torch.Tensor], surrogate: Callable[[], torch.Tensor]
) -> None:
    """Autograd gradient of ``value`` w.r.t. a few entries of two weight tensors (an attention
    projection of layer 0 and the speech rows of the input embeddings) against central
    differences of ``surrogate`` (float64)."""
    speech = lm.layout.speech_offset
    params = [
        (lm.model.model.layers[0].self_attn.v_proj.weight, [(0, 0), (3, 5), (7, 15)]),
        (lm.model.model.embed_tokens.weight, [(speech + 2, 1), (speech + 5, 9)]),
    ]
    weights = [p for p, _ in params]
    grads = torch.autograd.grad(value(), weights)
    eps = 1e-6
    for (weight, entries), grad in zip(params, grads, strict=True):
        for entry in entries:
            with torch.no_grad():
                original = weight[entry].item()
                weight[entry] = original + eps
                plus = surrogate().item()
                weight[entry] = original - eps
                minus = surrogate().item()
                weight[entry] = original
            numeric = (plus - minus) / (2 * eps)
            assert grad[entry].item() == pytest.approx(numeric, rel=1e-5, abs=1e-8), entry
        assert grad.abs().sum() > 0


@pytest.fixture
def float64_norms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Llama's RMSNorm computes in float32 whatever the model's dtype, a 1e-7 rounding that
    swamps finite differences; for the gradient checks it keeps the input's dtype."""

    def forward(self: LlamaRMSNorm, hidden: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * hidden * scale

    monkeypatch.setattr(LlamaRMSNorm, "forward", forward)


def _objective(rollout: SoftRollout) -> torch.Tensor:
    w = torch.randn(rollout.speech_probs.shape, generator=_gen(7), dtype=rollout.soft.dtype)
    return (rollout.speech_probs * w).sum()


def _rollout_of(lm: CodecLM) -> tuple[list[list[int]], torch.Tensor, torch.Tensor]:
    """A rollout of the policy with one row ended early, so padded positions are covered."""
    prompts = _prompts(lm)
    out = lm.sample(prompts, max_new_tokens=8, generator=_gen(2))
    assert out.mask[0].all() and not out.mask[1].all()
    return prompts, out.completion_ids, out.mask


@pytest.mark.usefixtures("float64_norms")
def test_teacher_forced_gradient_matches_finite_differences() -> None:
    lm = _tiny_lm(dtype=torch.float64)
    prompts, ids, mask = _rollout_of(lm)

    def soft(straight_through: bool = False) -> torch.Tensor:
        rollout = lm.soft_tokens_teacher_forced(
            prompts, ids, mask, tau=0.7, temperature=0.9, straight_through=straight_through,
            generator=_gen(),
        )  # fmt: skip
        return _objective(rollout)

    _check_gradient(lm, soft, soft)
    # straight-through: the value is one-hot (flat in the weights), the gradient is the soft
    # surrogate's, so it is compared with finite differences of the soft objective
    _check_gradient(lm, lambda: soft(straight_through=True), soft)


@pytest.mark.usefixtures("float64_norms")
def test_free_running_gradient_matches_finite_differences() -> None:
    lm = _tiny_lm(dtype=torch.float64)

    def soft() -> torch.Tensor:
        rollout = lm.soft_sample(
            _prompts(lm), max_new_tokens=5, tau=0.7, temperature=0.9, generator=_gen()
        )
        return _objective(rollout)

    _check_gradient(lm, soft, soft)


@pytest.mark.parametrize("positions", ["sequential", "text_aligned"])
def test_teacher_forced_policy_is_completion_logprobs(positions: str) -> None:
    lm = _tiny_lm(positions)
    prompts, ids, mask = _rollout_of(lm)
    with torch.no_grad():
        out = lm.soft_tokens_teacher_forced(prompts, ids, mask, temperature=0.8, generator=_gen())
        _, expected = lm.completion_logprobs(prompts, ids, mask, 0.8, return_logits=True)
    assert out.logprobs.shape == expected.shape == (2, ids.shape[1], lm.layout.vocab_size)
    torch.testing.assert_close(out.logprobs[mask], expected[mask], atol=1e-5, rtol=1e-5)
    assert torch.equal(out.mask, mask) and (out.hard_ids[~mask] == lm.layout.pad_id).all()


@pytest.mark.parametrize("positions", ["sequential", "text_aligned"])
def test_free_running_straight_through_is_teacher_forcing_on_its_choices(positions: str) -> None:
    # the forward value of a straight-through soft token is a one-hot, so its embedding is the
    # hard token's: the KV-cache rollout must see what one teacher-forced pass over it sees
    lm = _tiny_lm(positions)
    prompts = _prompts(lm)
    with torch.no_grad():
        out = lm.soft_sample(prompts, max_new_tokens=8, straight_through=True, generator=_gen())
        _, expected = lm.completion_logprobs(prompts, out.hard_ids, out.mask, return_logits=True)
    torch.testing.assert_close(out.logprobs[out.mask], expected[out.mask], atol=1e-5, rtol=1e-5)


def test_free_running_hard_choices_are_argmax_of_logprobs_plus_the_noise() -> None:
    lm = _tiny_lm()
    with torch.no_grad():
        out = lm.soft_sample(_prompts(lm), max_new_tokens=8, tau=0.5, generator=_gen())
    columns = speech_vocab_ids(lm.layout, "cpu")
    logp = out.logprobs.index_select(-1, columns)
    gen = _gen()  # one [B, K] draw per step
    steps = [gumbel_noise((2, len(columns)), gen, "cpu", logp.dtype) for _ in range(logp.shape[1])]
    noise = torch.stack(steps, dim=1)
    expected = columns[(logp + noise).argmax(-1)]
    assert torch.equal(out.hard_ids[out.mask], expected[out.mask])
    # without noise the argmax would differ somewhere: the noise is really used
    assert not torch.equal(out.hard_ids[out.mask], columns[logp.argmax(-1)][out.mask])
    # stops at the end marker: a row's mask ends right after its first end choice
    for row, keep in zip(out.hard_ids, out.mask, strict=True):
        ends = (row == lm.layout.speech_end_id).nonzero()
        assert int(keep.sum()) == (int(ends[0]) + 1 if len(ends) else out.mask.shape[1])


@pytest.mark.parametrize("mode", ["teacher_forced", "free_running"])
def test_seed_restriction_normalisation_and_low_tau(mode: str) -> None:
    lm = _tiny_lm()
    prompts, ids, mask = _rollout_of(lm)

    def run(tau: float, seed: int = 3) -> SoftRollout:
        with torch.no_grad():
            if mode == "teacher_forced":
                return lm.soft_tokens_teacher_forced(
                    prompts, ids, mask, tau=tau, generator=_gen(seed)
                )
            return lm.soft_sample(prompts, max_new_tokens=6, tau=tau, generator=_gen(seed))

    out = run(1.0)
    again, other = run(1.0), run(1.0, seed=4)
    assert torch.equal(out.soft, again.soft) and torch.equal(out.hard_ids, again.hard_ids)
    assert not torch.equal(out.soft, other.soft)
    k = NUM_SPEECH + 1
    assert out.soft.shape == (*out.mask.shape, k) and out.speech_probs.shape[-1] == NUM_SPEECH
    torch.testing.assert_close(out.soft.sum(-1), out.mask.float())
    # only speech tokens and the end marker carry probability; text and markers get none
    allowed = torch.zeros(lm.layout.vocab_size, dtype=torch.bool)
    allowed[speech_vocab_ids(lm.layout, "cpu")] = True
    probs = out.logprobs.exp()[out.mask]
    assert (probs[:, ~allowed] == 0).all()
    torch.testing.assert_close(probs[:, allowed].sum(-1), torch.ones(len(probs)))
    assert allowed[out.hard_ids[out.mask]].all()
    column_of = torch.full((lm.layout.vocab_size,), -1)
    column_of[speech_vocab_ids(lm.layout, "cpu")] = torch.arange(k)
    for speech, row, keep in zip(out.speech_tokens, out.hard_ids, out.mask, strict=True):
        assert speech.tolist() == [int(column_of[i]) for i in row[keep] if column_of[i] < k - 1]
    # tau -> 0: the soft token is the one-hot of the hard choice
    cold = run(1e-4)
    one_hot = torch.nn.functional.one_hot(column_of[cold.hard_ids[cold.mask]], k).float()
    torch.testing.assert_close(cold.soft[cold.mask], one_hot, atol=1e-3, rtol=0)
    if mode == "teacher_forced":  # same noise, same inputs: tau does not move the argmax
        assert torch.equal(cold.hard_ids, out.hard_ids)


def _given_choice_numpy(
    logp: np.ndarray, choice: np.ndarray, u_top: np.ndarray, u_free: np.ndarray
) -> np.ndarray:
    """The posterior Gumbel noise written out per row from its two uniform draws."""
    noise = np.empty_like(logp)
    for row in np.ndindex(logp.shape[:-1]):
        top = np.log(np.exp(logp[row]).sum()) - np.log(-np.log(u_top[row][0]))
        for i, lp in enumerate(logp[row]):
            free = lp - np.log(-np.log(u_free[row][i]))
            value = top if i == choice[row] else -np.log(np.exp(-top) + np.exp(-free))
            noise[row][i] = value - lp
    return noise


def test_noise_given_choice_matches_numpy_and_keeps_the_choice() -> None:
    logp = torch.log_softmax(torch.randn(3, 4, 6, generator=_gen(1), dtype=torch.float64), -1)
    choice = torch.randint(0, 6, (3, 4), generator=_gen(2))
    noise = gumbel_noise_given_choice(logp, choice, _gen(5))
    uniforms = _gen(5)  # the maximum's draw first, then one per column
    u_top = torch.rand((3, 4, 1), generator=uniforms).double().numpy()
    u_free = torch.rand((3, 4, 6), generator=uniforms).double().numpy()
    expected = _given_choice_numpy(logp.numpy(), choice.numpy(), u_top, u_free)
    np.testing.assert_allclose(noise.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert torch.equal((logp + noise).argmax(-1), choice)
    # a constant of the graph, like fresh noise: the gradient is the softmax's alone
    assert not gumbel_noise_given_choice(logp.requires_grad_(), choice, _gen(5)).requires_grad
    logp = logp.detach()
    # the choice is forced even where the policy gives it almost nothing
    unlikely = logp.argmin(-1)
    forced = gumbel_noise_given_choice(logp, unlikely, _gen(6))
    assert torch.equal((logp + forced).argmax(-1), unlikely)
    _, hard = gumbel_softmax(logp, forced, 1.0, True, unlikely)
    assert torch.equal(hard, unlikely)


def test_noise_given_choice_is_the_conditional_of_fresh_noise() -> None:
    # Monte Carlo: fresh draws whose argmax is column k must look like draws given k
    logp = torch.log(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))
    n = 200_000
    fresh = logp + gumbel_noise((n, 3), _gen(11), "cpu", torch.float64)
    for k in range(3):
        kept = fresh[fresh.argmax(-1) == k]
        given = logp + gumbel_noise_given_choice(
            logp.expand(n, 3), torch.full((n,), k), _gen(12 + k)
        )
        torch.testing.assert_close(given.mean(0), kept.mean(0), atol=0.02, rtol=0)
        torch.testing.assert_close(given.std(0), kept.std(0), atol=0.02, rtol=0)
        soft_given = torch.softmax(given, -1).mean(0)
        torch.testing.assert_close(soft_given, torch.softmax(kept, -1).mean(0), atol=0.01, rtol=0)
    # and the choice is what is conditioned on: without it the soft tokens would differ
    assert (torch.softmax(fresh, -1).mean(0) - soft_given).abs().max() > 0.1


def test_teacher_forced_given_completion_relaxes_the_completion() -> None:
    lm = _tiny_lm()
    prompts, ids, mask = _rollout_of(lm)
    with torch.no_grad():
        given = lm.soft_tokens_teacher_forced(
            prompts, ids, mask, straight_through=True, generator=_gen(), given_completion=True
        )
        fresh = lm.soft_tokens_teacher_forced(
            prompts, ids, mask, straight_through=True, generator=_gen()
        )
    assert torch.equal(given.hard_ids[mask], ids[mask])
    assert (given.hard_ids[~mask] == lm.layout.pad_id).all()
    assert not torch.equal(fresh.hard_ids[mask], ids[mask])  # fresh noise draws anew
    columns = speech_vocab_ids(lm.layout, "cpu")
    one_hot = (columns[None, :] == ids[mask][:, None]).float()
    torch.testing.assert_close(given.soft[mask], one_hot)  # straight-through: the tokens
    torch.testing.assert_close(given.logprobs, fresh.logprobs)
    bad = ids.clone()
    bad[0, 0] = lm.layout.pad_id
    with pytest.raises(ValueError, match="given_completion"):
        lm.soft_tokens_teacher_forced(prompts, bad, mask, given_completion=True)


def test_rejects_bad_arguments() -> None:
    lm = _tiny_lm()
    with pytest.raises(ValueError, match="tau > 0"):
        lm.soft_sample(_prompts(lm), max_new_tokens=3, tau=0.0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        lm.soft_sample(_prompts(lm), max_new_tokens=0)
