"""W3AR arithmetic (docs/methods.md#w3ar): word rewards read from an ASR's cross-attention,
group-relative word advantages spread over the speech tokens each word covers, and the loss.

Kept free of the training loop (``local_lib.rl.w3ar_loop``) so every formula can be checked
against numbers worked out by hand. The token and word metrics themselves are the numba kernels
of ``local_lib.align.attention_metrics``; this module chooses their settings, batches the ASR's
attention for them and turns their word rewards into per-token advantages for the clipped loss
of ``local_lib.rl.grpo``, which takes one advantage per token.

Samples are laid out group-major, as GRPO's: the ``N`` samples of text 0 first, then text 1...
All samples of a group share the reference text, hence its tokens and words, so word ``k`` of
one sample is word ``k`` of the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from local_lib.align.attention_metrics import AttentionMetrics, W3ARConfig, attention_metrics
from local_lib.models.asr_reward import HeadAttention, RewardASR
from local_lib.rl.grpo import GRPOConfig, LossType, grpo_loss
from local_lib.rl.method_spec import MethodSpec

METHOD = MethodSpec(
    family="codec_lm",
    curve_keys=("reward/word", "reward/purity", "reward/monotonicity", "sft_ce", "kl", "entropy"),
)


@dataclass(frozen=True)
class W3ARRewardConfig:
    """The ``reward:`` section: the metrics, the ablation switches and the attention heads.

    With one of purity and monotonicity switched off, the other is the whole token reward (weight
    1 instead of 0.5 each), so the ablations keep the reward's scale.
    """

    use_purity: bool = True
    use_monotonicity: bool = True
    group_relative: bool = True  # false: raw word rewards are the advantages
    window_ms: float = 120.0  # purity window W, converted to ASR frames (rounded)
    beta: float = 0.1  # the paper's beta_m in tanh(beta_m * peak step)
    heads_top_k: int = 2  # heads chosen when train_w3ar chooses them (select_heads_utts > 0)
    # With no heads file beside the reward ASR, choose the heads on this many (evenly spaced)
    # utterances of natural speech and write the file; 0: a missing file is an error.
    select_heads_utts: int = 0
    # The data dir those utterances come from (relative to the run directory). Held-out speech
    # (the recipes: data/dev) says how the heads align speech the reward ASR was not trained on,
    # as the TTS output is; empty: --train-dir.
    select_heads_dir: str = ""

    def __post_init__(self) -> None:
        if not (self.use_purity or self.use_monotonicity):
            raise ValueError("use_purity and use_monotonicity are both false: no reward is left")
        if self.window_ms < 0 or self.beta <= 0:
            raise ValueError(f"need window_ms >= 0 and beta > 0, got {self.window_ms}, {self.beta}")
        if self.heads_top_k < 1 or self.select_heads_utts < 0:
            raise ValueError("need heads_top_k >= 1 and select_heads_utts >= 0")

    def metrics_config(self, frame_shift_s: float, speech_token_rate: float) -> W3ARConfig:
        """The kernel's settings for an ASR with frames every ``frame_shift_s`` seconds and a
        policy with ``speech_token_rate`` tokens per second."""
        both = self.use_purity and self.use_monotonicity
        weight = 0.5 if both else 1.0
        return W3ARConfig(
            window=round(self.window_ms / 1000.0 / frame_shift_s),
            beta=self.beta,
            purity_weight=weight if self.use_purity else 0.0,
            monotonicity_weight=weight if self.use_monotonicity else 0.0,
            first_monotonicity=0.0,
            asr_frame_rate=1.0 / frame_shift_s,
            speech_token_rate=speech_token_rate,
        )


@dataclass(frozen=True)
class W3ARLossConfig:
    """The ``loss:`` section: ``ce_weight * CE(ground truth) + policy term + gamma * KL``."""

    gamma: float = 0.1  # weight of the per-token k3 KL to the frozen base; 0: no reference model
    ce_weight: float = 1.0  # weight of the teacher-forced CE on the targets' own speech tokens
    loss_type: LossType = "dapo"  # how token terms are averaged (local_lib.rl.grpo.aggregate)

    def __post_init__(self) -> None:
        if self.gamma < 0 or self.ce_weight < 0:
            raise ValueError(f"need gamma, ce_weight >= 0, got {self.gamma}, {self.ce_weight}")

    def policy_gradient(self, max_completion_length: int) -> GRPOConfig:
        """The GRPO loss settings of the policy and KL terms (one on-policy update: no clip)."""
        return GRPOConfig(
            beta=self.gamma,
            loss_type=self.loss_type,
            max_completion_length=max_completion_length,
        )


def padded_attention(
    rows: Sequence[np.ndarray], word_indices: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Items ``[n_tokens, n_frames]`` as the kernel's zero-padded batch: (attention
    ``[B, T_text, T_frames]``, text lengths, frame lengths, word index padded with -1)."""
    text = np.array([r.shape[0] for r in rows], np.int64)
    frames = np.array([r.shape[1] for r in rows], np.int64)
    values = np.zeros((len(rows), int(text.max()), int(frames.max())), np.float32)
    words = np.full(values.shape[:2], -1, np.int64)
    for b, (r, w) in enumerate(zip(rows, word_indices, strict=True)):
        values[b, : r.shape[0], : r.shape[1]] = r
        words[b, : len(w)] = w
    return values, text, frames, words


def attention_rewards(
    attentions: Sequence[HeadAttention], speech_lengths: Sequence[int], cfg: W3ARConfig
) -> AttentionMetrics:
    """Token and word metrics of each sample from the mean of its chosen heads; the word spans
    are in the sample's ``speech_lengths`` speech tokens."""
    values, text, frames, words = padded_attention(
        [a.mean() for a in attentions], [a.word_index for a in attentions]
    )
    return attention_metrics(values, text, frames, words, np.asarray(speech_lengths), cfg)


def text_alignment(
    asr: RewardASR,
    heads: Sequence[tuple[int, int]],
    wavs: Sequence[np.ndarray],
    texts: Sequence[str],
    cfg: W3ARRewardConfig,
) -> tuple[AttentionMetrics, np.ndarray]:
    """The metrics of audio with no speech tokens at hand (a system's test audio, samples to
    pick from): ``asr``'s ``heads`` teacher-forced with ``texts``; also each item's text length.
    The word spans are left unplaced (each item counts one speech token): no reward reads them."""
    attention = asr.head_attention(list(wavs), list(texts), heads)
    metrics_cfg = cfg.metrics_config(asr.frame_shift_s, speech_token_rate=1.0)
    metrics = attention_rewards(attention, [1] * len(attention), metrics_cfg)
    return metrics, np.array([a.weights.shape[1] for a in attention], np.int64)


def token_means(
    metrics: AttentionMetrics, text_lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per item: the mean purity over its tokens and the mean monotonicity over its tokens after
    the first (the first has no predecessor; its value is a constant, 0 for one token)."""
    n = np.asarray(text_lengths, np.float64)
    purity = metrics.purity.sum(axis=1) / n
    monotonicity = metrics.monotonicity[:, 1:].sum(axis=1) / np.maximum(n - 1, 1)
    return purity, monotonicity


def word_advantages(
    word_reward: torch.Tensor, n_words: torch.Tensor, group_size: int, group_relative: bool = True
) -> torch.Tensor:
    """``A_w^(n) = R_w^(n) - mean_k R_w^(k)`` over the ``group_size`` samples of a text
    (centred only, no scaling), ``[B, W]``; raw ``R_w`` when not ``group_relative``. Slots past
    an item's ``n_words`` are 0."""
    batch, width = word_reward.shape
    valid = torch.arange(width)[None, :] < n_words[:, None]
    rewards = word_reward.masked_fill(~valid, 0.0)
    if not group_relative:
        return rewards
    if group_size < 2 or batch % group_size:
        raise ValueError(f"{batch} samples do not form groups of {group_size} >= 2")
    counts = n_words.view(-1, group_size)
    if (counts != counts[:, :1]).any():
        group = int((counts != counts[:, :1]).any(dim=1).nonzero()[0])
        raise ValueError(
            f"group {group}: its samples have {counts[group].tolist()} words; the samples of a "
            "text must share its words"
        )
    grouped = rewards.view(-1, group_size, width)
    return (grouped - grouped.mean(dim=1, keepdim=True)).view(batch, width)


def token_advantages(
    word_adv: torch.Tensor, word_span: torch.Tensor, n_words: torch.Tensor, width: int
) -> torch.Tensor:
    """Each word's advantage on every speech token of its ``[start, end)`` span, ``[B, width]``;
    a token in no word's span gets 0."""
    positions = torch.arange(width)[None, None, :]
    used = torch.arange(word_adv.shape[1])[None, :] < n_words[:, None]
    inside = (positions >= word_span[..., :1]) & (positions < word_span[..., 1:])
    inside &= used[..., None]
    return (inside.to(word_adv.dtype) * word_adv[..., None]).sum(dim=1)


def w3ar_loss(
    logp: torch.Tensor,
    mask: torch.Tensor,
    advantages: torch.Tensor,
    sft_ce: torch.Tensor,
    ce_weight: float,
    pg_cfg: GRPOConfig,
    ref_logp: torch.Tensor | None = None,
    logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``ce_weight * sft_ce`` plus GRPO's per-token loss with ``[B, T]`` advantages, on-policy.

    One update per rollout batch, so the ratio is 1 in value and never clipped: each token adds
    ``-A_t * log pi(y_t)`` to the gradient and ``-A_t`` to the value, plus ``gamma * k3`` when
    ``gamma > 0``; ``pg_cfg.loss_type`` averages the token terms (``dapo``: over all
    completion tokens of the batch). Returns the loss and GRPO's statistics with ``sft_ce``.
    """
    policy, stats = grpo_loss(logp, mask, advantages, pg_cfg, ref_logp=ref_logp, logits=logits)
    stats["sft_ce"] = float(sft_ce.detach())
    return ce_weight * sft_ce + policy, stats
