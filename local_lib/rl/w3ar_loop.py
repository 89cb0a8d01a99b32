"""One W3AR training step for the codec LM (docs/methods.md#w3ar), driven by the shared Trainer.

A step takes a rollout batch from ``local_lib.rl.rollout.Rollouts`` (``prompts_per_step``
texts, ``group_size`` samples each, rendered to audio) and scores it here: the reward ASR is
teacher-forced with each text on its samples' audio, the mean of its chosen cross-attention
heads gives per-token purity and monotonicity and per-word rewards, and each word's
group-relative advantage is spread over the speech tokens it covers
(``local_lib.rl.w3ar``). The loss adds the cross-entropy of the batch's texts' own
ground-truth speech tokens (teacher-forced, as in SFT, with the same prompts) and, with
``gamma > 0``, GRPO's per-token k3 KL to the frozen base.

One optimizer update per rollout batch (the on-policy case). Resume: rollout batch ``k`` depends
on (seed, k, rank) alone and the reward ASR is deterministic, so a resumed run repeats the
uninterrupted one. The frozen reference is the starting policy, copied before the Trainer loads
any checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from local_lib.data.speech_tokens import PromptPool
from local_lib.models.asr_reward import RewardASR
from local_lib.models.codec_lm import CodecLM
from local_lib.rl.rollout import (
    PolicyLogProbs,
    PromptSource,
    RolloutConfig,
    Rollouts,
    ScoredRollout,
    SpeechRenderer,
    UpdateTimer,
    mean_over_ranks,
    token_rewards,
)
from local_lib.rl.w3ar import (
    W3ARLossConfig,
    W3ARRewardConfig,
    attention_rewards,
    token_advantages,
    token_means,
    w3ar_loss,
    word_advantages,
)
from local_lib.train.config import TrainSection

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class W3ARLoopConfig:
    """The YAML file (conf/w3ar*.yaml): ``rollout`` (RolloutConfig), ``train`` (TrainSection),
    ``reward`` (W3ARRewardConfig) and ``loss`` (W3ARLossConfig)."""

    rollout: RolloutConfig
    train: TrainSection
    reward: W3ARRewardConfig = field(default_factory=W3ARRewardConfig)
    loss: W3ARLossConfig = field(default_factory=W3ARLossConfig)

    def __post_init__(self) -> None:
        if self.reward.group_relative and self.rollout.group_size < 2:
            raise ValueError("group-relative advantages need rollout.group_size >= 2")
        if self.rollout.reward_input != "audio":
            raise ValueError("W3AR reads the reward ASR's attention on audio: reward_input: audio")
        if self.train.grad_accum != 1:
            raise ValueError("W3AR takes one rollout batch per update: train.grad_accum must be 1")


class W3ARPolicy(PolicyLogProbs):
    """The rollout's log-probs and the CE of the ground-truth speech in one forward, so that
    under DDP both terms' gradients are all-reduced (only a wrapped forward does that)."""

    def forward(  # type: ignore[override]
        self,
        prompts: Sequence[Sequence[int]],
        completion_ids: torch.Tensor,
        mask: torch.Tensor,
        sft_batch: Mapping[str, torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        logp, logits = super().forward(prompts, completion_ids, mask)
        return logp, logits, self.codec_lm.sft_loss(sft_batch)


@dataclass(frozen=True)
class WordRollout:
    """One scored rollout batch with what the loss needs."""

    scored: ScoredRollout
    advantages: torch.Tensor  # [B, T] per completion token
    sft_batch: dict[str, torch.Tensor]  # the texts with their ground-truth speech tokens
    ref_logp: torch.Tensor | None
    stats: dict[str, float]


class W3ARLoop:
    """Rollouts, the attention reward and the loss for ``Trainer.fit(loop.loss, loop.batch)``.

    ``heads``: the ``(layer, head)`` pairs of ``asr`` whose mean attention is read;
    ``speech_token_rate``: the policy's speech tokens per second (word spans in tokens).
    """

    def __init__(
        self,
        lm: CodecLM,
        renderer: SpeechRenderer,
        asr: RewardASR,
        heads: Sequence[tuple[int, int]],
        pool: PromptPool,
        cfg: W3ARLoopConfig,
        speech_token_rate: float,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not heads:
            raise ValueError("W3AR needs at least one attention head of the reward ASR")
        self.lm, self.asr, self.heads, self.cfg = lm, asr, list(heads), cfg
        self.world_size, self.speech_tokens = world_size, pool.tokens
        ro = cfg.rollout
        prompts = PromptSource(lm, pool, seed, ro.prompts_per_step, ro.prompt_match)
        self.rollouts = Rollouts(lm, prompts, renderer, None, ro, seed, rank)
        self.policy = W3ARPolicy(lm, ro.temperature)
        self.metrics_cfg = cfg.reward.metrics_config(asr.frame_shift_s, speech_token_rate)
        self.pg_cfg = cfg.loss.policy_gradient(ro.max_new_tokens)
        self.reference: CodecLM | None = None
        if cfg.loss.gamma > 0:
            self.reference = lm.clone(frozen=True)
        self.timer = UpdateTimer()

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        self.timer.attach(optimizer)

    def batch(self, step: int) -> WordRollout:
        """The rollout batch of (0-based) optimizer step ``step``: one per update."""
        return self.make_rollout(step)

    @torch.no_grad()
    def make_rollout(self, index: int) -> WordRollout:
        cfg, group = self.cfg, self.cfg.rollout.group_size
        scored = self.rollouts(index)
        ro, prompts = scored.rollout, scored.prompts
        audio = self.rollouts.reward_batch(scored)
        lengths = [len(t) for t in ro.speech_tokens]
        t0 = time.perf_counter()
        attention = self.asr.head_attention(audio.wavs, scored.references.texts, self.heads)
        metrics = attention_rewards(attention, lengths, self.metrics_cfg)
        scored.timings["time/reward"] = time.perf_counter() - t0
        n_words = torch.from_numpy(metrics.n_words)
        word_reward = torch.from_numpy(metrics.word_reward).float()
        word_adv = word_advantages(word_reward, n_words, group, cfg.reward.group_relative)
        spread = token_advantages(
            word_adv, torch.from_numpy(metrics.word_span), n_words, max(lengths)
        )
        advantages = token_rewards(spread, ro.mask)
        targets = [self.speech_tokens[utt] for utt in scored.targets]
        sft_batch = self.lm.training_batch(prompts[::group], targets)
        ref_logp = None
        if self.reference is not None:
            ref_logp, _ = self.reference.completion_logprobs(
                prompts, ro.completion_ids, ro.mask, cfg.rollout.temperature
            )
        n_text = np.array([a.weights.shape[1] for a in attention])
        purity, monotonicity = token_means(metrics, n_text)
        words = word_reward[torch.arange(word_reward.shape[1])[None, :] < n_words[:, None]]
        num_tokens = int(ro.mask.sum())
        stats = {
            "reward/word": float(words.mean()),
            "reward/word_std": float(words.std(correction=0)),
            "reward/purity": float(purity.mean()),
            "reward/monotonicity": float(monotonicity.mean()),
            "adv/abs_mean": float(advantages.abs().sum() / max(num_tokens, 1)),
            "truncated_frac": float((~ro.has_eos).float().mean()),
            "completion_len": num_tokens / len(prompts),
            "rollout_tokens_per_s": num_tokens / max(scored.timings["time/generate"], 1e-9),
            **scored.timings,
        }
        LOG.info(
            "rollout %d (rank %d): %d samples, %d tokens, %d words",
            index, self.rollouts.rank, len(prompts), num_tokens, len(words),
        )  # fmt: skip
        device = self.lm.model.device
        return WordRollout(scored, advantages.to(device), sft_batch, ref_logp, stats)

    def loss(self, model: nn.Module, batch: WordRollout) -> tuple[torch.Tensor, dict[str, float]]:
        """The Trainer's ``loss_fn``; ``model`` is the (possibly DDP-wrapped) W3ARPolicy."""
        self.timer.start()
        ro = batch.scored.rollout
        logp, logits, sft_ce = model(batch.scored.prompts, ro.completion_ids, ro.mask,
                                     batch.sft_batch)  # fmt: skip
        loss, loss_stats = w3ar_loss(
            logp, ro.mask, batch.advantages, sft_ce, self.cfg.loss.ce_weight, self.pg_cfg,
            ref_logp=batch.ref_logp, logits=logits,
        )  # fmt: skip
        stats = dict(batch.stats)
        stats.update({k: loss_stats[k] for k in ("sft_ce", "entropy", "kl") if k in loss_stats})
        self.timer.add_to(stats)
        return loss, mean_over_ranks(stats, self.world_size)
