"""One GRPO training step for the codec LM (docs/methods.md, GRPO), driven by the shared Trainer.

A step takes a rollout batch from ``local_lib.rl.rollout.Rollouts`` (``prompts_per_step`` texts,
``group_size`` completions each, scored by the reward registry), turns its rewards into group
advantages (after the truncation and length penalties) and minimises the clipped GRPO loss of
``local_lib.rl.grpo``. A rollout batch serves ``num_iterations`` optimizer updates; its
log-probs under the sampling policy are the "old" ones of the ratio.

Resume: rollout batch ``k`` depends on (seed, k, rank) alone and checkpoints fall on rollout
boundaries, so a resumed run repeats the uninterrupted one. The frozen reference (only when
``beta > 0``) is the starting policy, taken before the Trainer loads any checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from local_lib.models.codec_lm import CodecLM
from local_lib.rewards import RewardSet
from local_lib.rl.grpo import (
    FlatRewardGuard,
    GRPOConfig,
    apply_length_penalty,
    apply_truncation_penalty,
    group_advantages,
    grpo_loss,
)
from local_lib.rl.rollout import (
    PolicyLogProbs,
    PromptSource,
    RolloutConfig,
    Rollouts,
    ScoredRollout,
    SpeechRenderer,
    UpdateTimer,
    mean_over_ranks,
    reward_stats,
    sequence_rewards,
)
from local_lib.data.speech_tokens import PromptPool
from local_lib.train.config import TrainSection

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class GRPOLoopConfig:
    """The YAML file (conf/grpo*.yaml): ``rollout`` (RolloutConfig), ``train`` (TrainSection),
    ``loss`` (GRPOConfig) and ``rewards`` (``local_lib.rewards.build_rewards``)."""

    rollout: RolloutConfig
    train: TrainSection
    rewards: Mapping[str, Any]
    loss: GRPOConfig = field(default_factory=GRPOConfig)
    num_iterations: int = 1  # optimizer updates per rollout batch
    # rollouts in a row with equal rewards in every group before the run stops (FlatRewardGuard)
    max_flat_rollouts: int = 5

    def __post_init__(self) -> None:
        if self.rollout.group_size < 2 or self.num_iterations < 1 or self.max_flat_rollouts < 1:
            raise ValueError(
                "need rollout.group_size >= 2, num_iterations >= 1 and max_flat_rollouts >= 1"
            )
        train = self.train
        if train.grad_accum != 1:
            raise ValueError("GRPO takes one rollout batch per update: train.grad_accum must be 1")
        if train.save_every % self.num_iterations or train.num_steps % self.num_iterations:
            raise ValueError(
                f"train.save_every ({train.save_every}) and train.num_steps ({train.num_steps}) "
                f"must be multiples of num_iterations ({self.num_iterations}): a checkpoint "
                "inside a rollout batch could not be resumed exactly"
            )
        if self.loss.max_completion_length is None:
            limit = self.rollout.max_new_tokens
            object.__setattr__(
                self, "loss", dataclasses.replace(self.loss, max_completion_length=limit)
            )


@dataclass(frozen=True)
class GroupRollout:
    """One scored rollout batch with what the loss needs: advantages and reference log-probs."""

    scored: ScoredRollout
    advantages: torch.Tensor  # [B]
    ref_logp: torch.Tensor | None
    stats: dict[str, float]

    @property
    def index(self) -> int:
        return self.scored.index


class GRPOLoop:
    """Rollouts, rewards and the loss for ``Trainer.fit(loop.loss, loop.batch)``."""

    def __init__(
        self,
        lm: CodecLM,
        renderer: SpeechRenderer,
        rewards: RewardSet,
        pool: PromptPool,
        cfg: GRPOLoopConfig,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.lm, self.cfg, self.world_size = lm, cfg, world_size
        ro = cfg.rollout
        prompts = PromptSource(lm, pool, seed, ro.prompts_per_step, ro.prompt_match)
        self.rollouts = Rollouts(lm, prompts, renderer, rewards, ro, seed, rank)
        self.policy = PolicyLogProbs(lm, ro.temperature)
        self.reference: CodecLM | None = None
        if cfg.loss.beta > 0:
            self.reference = lm.clone(frozen=True)
        self._current: GroupRollout | None = None
        # A run shorter than max_flat_rollouts still stops when every one of its rollouts is flat.
        rollouts = cfg.train.num_steps // cfg.num_iterations
        self.flat_guard = FlatRewardGuard(min(cfg.max_flat_rollouts, rollouts))
        self.timer = UpdateTimer()
        self._timed_index: int | None = None

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        self.timer.attach(optimizer)

    def batch(self, step: int) -> GroupRollout:
        """The rollout batch for (0-based) optimizer step ``step``; made once per batch."""
        index = step // self.cfg.num_iterations
        if self._current is None or self._current.index != index:
            self._current = self.make_rollout(index)
        return self._current

    @torch.no_grad()
    def make_rollout(self, index: int) -> GroupRollout:
        cfg, group = self.cfg, self.cfg.rollout.group_size
        scored = self.rollouts(index)
        ro, prompts = scored.rollout, scored.prompts
        lengths = torch.tensor([len(t) for t in ro.speech_tokens])
        total = apply_truncation_penalty(
            sequence_rewards(scored.rewards.total, lengths), ro.has_eos.cpu(),
            cfg.loss.truncation_penalty,
        )  # fmt: skip
        if cfg.loss.length_penalty:
            expected = torch.tensor([self.lm.expected_speech_length(p) for p in prompts])
            total = apply_length_penalty(
                total, lengths, expected, cfg.loss.length_penalty, cfg.loss.length_tolerance
            )
        adv = group_advantages(total, group, cfg.loss.scale_rewards)
        ref_logp = None
        if self.reference is not None:
            ref_logp, _ = self.reference.completion_logprobs(
                prompts, ro.completion_ids, ro.mask, cfg.rollout.temperature
            )
        num_tokens = int(ro.mask.sum())
        stats = {
            "reward/mean": float(total.mean()),
            "reward/std": float(total.std()),
            "reward/group_std": float(total.view(-1, group).std(dim=1).mean()),
            "zero_var_groups": float(adv.zero_std_groups),
            "truncated_frac": float((~ro.has_eos).float().mean()),
            "completion_len": num_tokens / len(prompts),
            "rollout_tokens_per_s": num_tokens / max(scored.timings["time/generate"], 1e-9),
            **scored.timings,
            **reward_stats(scored.rewards, lengths),
        }
        LOG.info(
            "rollout %d (rank %d): %d completions, %d tokens",
            index, self.rollouts.rank, len(prompts), num_tokens,
        )  # fmt: skip
        device = self.lm.model.device
        return GroupRollout(scored, adv.values.to(device), ref_logp, stats)

    def loss(self, model: nn.Module, batch: GroupRollout) -> tuple[torch.Tensor, dict[str, float]]:
        """The Trainer's ``loss_fn``; ``model`` is the (possibly DDP-wrapped) PolicyLogProbs."""
        self.timer.start()
        ro = batch.scored.rollout
        logp, logits = model(batch.scored.prompts, ro.completion_ids, ro.mask)
        loss, loss_stats = grpo_loss(
            logp, ro.mask, batch.advantages, self.cfg.loss,
            old_logp=ro.logprobs, ref_logp=batch.ref_logp, logits=logits,
        )  # fmt: skip
        stats = dict(batch.stats)
        first_update = self._timed_index != batch.index
        if not first_update:  # rollout costs count once, on its first update
            stats.update({k: 0.0 for k in batch.scored.timings})
        self._timed_index = batch.index
        stats["clip_frac"] = loss_stats["clip_fraction"]
        stats["entropy"] = loss_stats["entropy"]
        if "kl" in loss_stats:
            stats["kl"] = loss_stats["kl"]
        self.timer.add_to(stats)
        stats = mean_over_ranks(stats, self.world_size, summed=("zero_var_groups",))
        if first_update:  # judged on every rank's groups, so all ranks stop together
            groups = len(batch.scored.prompts) // self.cfg.rollout.group_size * self.world_size
            self.flat_guard.update(
                batch.index, int(stats["zero_var_groups"]), groups, stats["reward/mean"]
            )
        return loss, stats
