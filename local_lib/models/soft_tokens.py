"""Gumbel-softmax soft speech tokens from the codec LM, differentiable into its weights.

DiffRO and HPRO (docs/methods.md#diffro, #hpro) give a frozen reward model soft tokens instead of
sampled ids, so its score reaches the policy by plain backprop, with no policy-gradient estimator:
``ỹ = softmax((log π(·)/T + g) / τ)``, g Gumbel noise from a seeded generator. Two modes:

- teacher-forced: one forward pass over ``prompt + completion`` (the policy's own rollout for
  DiffRO, ground-truth tokens for HPRO); every completion position is soft-sampled from the
  distribution there, so soft token t stays aligned with completion token t. The noise is
  either fresh (the hard choice at t is a new draw given the completion's prefix) or drawn
  given that its argmax is completion token t (``given_completion``), so the soft tokens relax
  the completion itself;
- free-running: autoregressive with a KV cache, each step's input the embedding ``ỹ @ E`` of the
  soft token (E: the LM's input embeddings of the speech vocabulary), so the gradient also runs
  through the earlier soft choices.

Per-token tensors here are over the *speech vocabulary*, K = num_speech_tokens + 1 columns:
speech tokens 0..S-1 in order, then <speech end> — the only ids allowed after <speech start>
(as in ``CodecLM.sample``), so a full-vocabulary soft token would only add zero columns, and
the reward models embed speech tokens alone (``SoftRollout.speech_probs``). The exception is
``SoftRollout.logprobs``: the full LM vocabulary, in the convention of
``CodecLM.completion_logprobs(return_logits=True)``, so an exact KL to a reference pairs the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from local_lib.models.codec_lm import CodecLM, TokenLayout

# what completion_logprobs(return_logits=True) reports for ids the policy may not emit
DISALLOWED_LOGPROB = -1e4


@dataclass(frozen=True)
class SoftRollout:
    """Soft tokens of a batch of completions, right-padded along T like ``Rollout``."""

    soft: torch.Tensor  # [B, T, K] speech vocabulary; rows sum to 1 where mask, 0 elsewhere
    hard_ids: torch.Tensor  # [B, T] LM ids of argmax(log π + g) (pad id where not mask)
    mask: torch.Tensor  # [B, T] bool: speech tokens and the end marker
    logprobs: torch.Tensor  # [B, T, V] policy log-probs, full LM vocab, others at -1e4
    speech_tokens: list[torch.Tensor]  # hard speech choices where mask, end markers dropped

    @property
    def speech_probs(self) -> torch.Tensor:
        """[B, T, num_speech_tokens]: the soft tokens without the end-marker column, what a
        reward model's speech-token embedding table multiplies."""
        return self.soft[..., :-1]


def speech_vocab_ids(layout: TokenLayout, device: torch.device | str) -> torch.Tensor:
    """LM ids of the K soft-token columns: speech tokens 0..S-1, then <speech end>."""
    first = layout.speech_offset
    speech = torch.arange(first, first + layout.num_speech_tokens, device=device)
    return torch.cat([speech, torch.tensor([layout.speech_end_id], device=device)])


def gumbel_noise(
    shape: Sequence[int],
    generator: torch.Generator | None,
    device: torch.device | str,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Standard Gumbel noise, drawn in float32 on the generator's device (CPU without one) and
    then moved and cast, so one seed gives the same noise for any model device and dtype."""
    source = generator.device if generator is not None else torch.device("cpu")
    uniform = torch.rand(tuple(shape), generator=generator, device=source)
    noise = -torch.log(-torch.log(uniform.clamp_min(torch.finfo(torch.float32).tiny)))
    return noise.to(device=device, dtype=dtype)


def policy_logprobs(
    logits: torch.Tensor, columns: torch.Tensor, temperature: float
) -> torch.Tensor:
    """[..., K] log-probs of the speech vocabulary: the distribution ``CodecLM.sample`` draws
    from, computed in at least float32 but kept in float64 for the gradient checks."""
    dtype = torch.promote_types(logits.dtype, torch.float32)
    return torch.log_softmax(logits.index_select(-1, columns).to(dtype) / temperature, dim=-1)


def gumbel_noise_given_choice(
    logp: torch.Tensor, choice: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Gumbel noise g from its posterior given ``argmax(logp + g) == choice`` (the top-down
    construction of the Gumbel-max trick): the maximum ``logsumexp(logp) + G₀`` sits at the
    choice, and every other column is its own ``logp_i + G_i`` truncated below that maximum.
    Two draws from ``generator``: ``[..., 1]`` for the maximum, then ``logp``'s shape. The
    noise is a constant of the graph, as ``gumbel_noise`` is."""
    logp = logp.detach()
    top = torch.logsumexp(logp, dim=-1, keepdim=True)
    top = top + gumbel_noise(top.shape, generator, logp.device, logp.dtype)
    free = logp + gumbel_noise(logp.shape, generator, logp.device, logp.dtype)
    perturbed = -torch.logaddexp(-top, -free)
    perturbed = perturbed.scatter(-1, choice[..., None], top)
    return perturbed - logp


def gumbel_softmax(
    logp: torch.Tensor,
    noise: torch.Tensor,
    tau: float,
    straight_through: bool,
    choice: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(soft tokens, column of each hard choice). Straight-through: the forward value is the
    one-hot of the hard choice, the gradient that of the softmax. The hard choice is
    argmax(logp + noise), or ``choice`` where the noise was drawn given it (rounding could
    otherwise tie the truncated columns with the maximum)."""
    perturbed = logp + noise
    soft = torch.softmax(perturbed / tau, dim=-1)
    if choice is None:
        choice = perturbed.argmax(dim=-1)
    if straight_through:
        hard = torch.nn.functional.one_hot(choice, soft.shape[-1]).to(soft.dtype)
        soft = hard - soft.detach() + soft
    return soft, choice


def soft_tokens_teacher_forced(
    lm: CodecLM,
    prompts: Sequence[Sequence[int]],
    completion_ids: torch.Tensor,
    mask: torch.Tensor,
    tau: float = 1.0,
    temperature: float = 1.0,
    straight_through: bool = False,
    generator: torch.Generator | None = None,
    given_completion: bool = False,
) -> SoftRollout:
    """Soft tokens at every position of given completions (``[B, T]`` LM ids, right-padded,
    ``mask`` as ``Rollout.mask``), from one forward pass laid out as ``completion_logprobs``
    lays it out; the noise is one ``[B, T, K]`` draw from ``generator``, or with
    ``given_completion`` the posterior draw whose hard choices are the completion's tokens."""
    _check(tau, temperature)
    ids, attn = lm._left_pad(prompts)
    device = ids.device
    completion_ids, mask = completion_ids.to(device), mask.to(device).bool()
    full_attn = torch.cat([attn, mask.long()], dim=1)
    positions = lm.position_ids(prompts, ids.shape[1], full_attn.shape[1])
    logits = lm.model(
        input_ids=torch.cat([ids, completion_ids], dim=1),
        attention_mask=full_attn,
        position_ids=positions,
        logits_to_keep=completion_ids.shape[1] + 1,
    ).logits[:, :-1]
    columns = speech_vocab_ids(lm.layout, device)
    logp = policy_logprobs(logits, columns, temperature)
    if given_completion:
        given = _columns_of(completion_ids, mask, columns, logits.shape[-1])
        noise = gumbel_noise_given_choice(logp, given, generator)
    else:
        given, noise = None, gumbel_noise(logp.shape, generator, device, logp.dtype)
    soft, choice = gumbel_softmax(logp, noise, tau, straight_through, given)
    return _soft_rollout(lm.layout, soft, choice, mask, logp, columns, logits.shape[-1])


def soft_sample(
    lm: CodecLM,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    tau: float = 1.0,
    temperature: float = 1.0,
    straight_through: bool = False,
    generator: torch.Generator | None = None,
) -> SoftRollout:
    """Free-running soft rollout: KV-cache decoding whose next input is ``soft @ E``, until
    every row's hard choice has been <speech end> or ``max_new_tokens``; positions and masks
    as in ``CodecLM.sample``. The noise is one ``[B, K]`` draw from ``generator`` per step."""
    _check(tau, temperature)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    ids, attn = lm._left_pad(prompts)
    batch, width = ids.shape
    positions = lm.position_ids(prompts, width, width + max_new_tokens)
    columns = speech_vocab_ids(lm.layout, ids.device)
    embed = lm.model.get_input_embeddings().weight.index_select(0, columns)
    out = lm.model(
        input_ids=ids, attention_mask=attn, position_ids=positions[:, :width],
        use_cache=True, logits_to_keep=1,
    )  # fmt: skip
    past, logits = out.past_key_values, out.logits[:, -1]
    done = torch.zeros(batch, dtype=torch.bool, device=ids.device)
    softs, choices, logps, masks = [], [], [], []
    for step in range(max_new_tokens):
        logp = policy_logprobs(logits, columns, temperature)
        noise = gumbel_noise(logp.shape, generator, ids.device, logp.dtype)
        soft, choice = gumbel_softmax(logp, noise, tau, straight_through)
        softs.append(soft)
        choices.append(choice)
        logps.append(logp)
        masks.append(~done)
        done = done | (choice == len(columns) - 1)
        if bool(done.all()):
            break
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
        out = lm.model(
            inputs_embeds=(soft.to(embed.dtype) @ embed)[:, None], attention_mask=attn,
            position_ids=positions[:, width + step : width + step + 1],
            past_key_values=past, use_cache=True,
        )  # fmt: skip
        past, logits = out.past_key_values, out.logits[:, -1]
    return _soft_rollout(
        lm.layout, torch.stack(softs, dim=1), torch.stack(choices, dim=1),
        torch.stack(masks, dim=1), torch.stack(logps, dim=1), columns, logits.shape[-1],
    )  # fmt: skip


def _columns_of(
    completion_ids: torch.Tensor, mask: torch.Tensor, columns: torch.Tensor, vocab_size: int
) -> torch.Tensor:
    """[B, T] soft-token column of each completion id (0 where not ``mask``); an id outside the
    speech vocabulary under the mask is an error, since no noise can make it the choice."""
    column_of = torch.full((vocab_size,), -1, dtype=torch.long, device=columns.device)
    column_of[columns] = torch.arange(len(columns), device=columns.device)
    given = column_of[completion_ids.clamp(0, vocab_size - 1)]
    if bool((given[mask] < 0).any()):
        raise ValueError("given_completion needs speech tokens or <speech end> under the mask")
    return given.clamp_min(0)


def _check(tau: float, temperature: float) -> None:
    if not (tau > 0 and temperature > 0):
        raise ValueError(f"need tau > 0 and temperature > 0, got {tau=}, {temperature=}")


def _soft_rollout(
    layout: TokenLayout,
    soft: torch.Tensor,
    choice: torch.Tensor,
    mask: torch.Tensor,
    logp: torch.Tensor,
    columns: torch.Tensor,
    vocab_size: int,
) -> SoftRollout:
    """Masked positions get all-zero soft rows (no reward gradient from padding) and the pad id."""
    hard_ids = torch.where(mask, columns[choice], layout.pad_id)
    full = logp.new_full((*logp.shape[:-1], vocab_size), DISALLOWED_LOGPROB)
    full = full.scatter(-1, columns.expand_as(logp), logp)
    speech = [
        (row[keep & (row != layout.speech_end_id)] - layout.speech_offset).cpu()
        for row, keep in zip(hard_ids, mask, strict=True)
    ]
    return SoftRollout(soft.masked_fill(~mask[..., None], 0.0), hard_ids, mask, full, speech)
