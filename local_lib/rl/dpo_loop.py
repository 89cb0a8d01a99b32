"""DPO for the codec LM (docs/methods.md#dpo) on the shared rollout path, driven by the Trainer.

A step needs ``dpo.pairs_per_step`` preference pairs. It draws rollout batches from
``local_lib.rl.rollout.Rollouts`` (``rollout.prompts_per_step`` texts, ``group_size`` samples
each, scored by the reward registry) until it has them, and makes each text's best and worst
sample a pair (``local_lib.rl.dpo.preference_pairs``). Texts whose samples lie within
``min_gap`` are skipped and counted (``dpo/skipped_texts``); a step that finds no pair in
``max_draws`` batches fails, naming the reward. Who samples:

- ``refresh_every: 0`` (offline DPO): the frozen base. The pairs are those of a data set made
  once from the base before training; those of step k are made when step k needs them.
- ``refresh_every: K`` (iterative DPO; 1 is online DPO): the policy. Every K-th step makes the
  pairs of the next K steps from the policy as it is then.

The reference is the starting (base) policy, copied before the Trainer loads any checkpoint.
Resume: the pairs of step k come from rollout batches ``k * max_draws + attempt``, seeded by
(seed, batch, rank) alone, sampled by the base or by the policy at the start of their round;
checkpoints fall on round boundaries, so a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from local_lib.data.speech_tokens import PromptPool
from local_lib.models.codec_lm import CodecLM
from local_lib.rewards import RewardOutput, RewardSet
from local_lib.rl.dpo import DPOConfig, dpo_loss, preference_pairs
from local_lib.rl.grpo import apply_length_penalty
from local_lib.rl.rollout import (
    PolicyLogProbs,
    PromptSource,
    RolloutConfig,
    Rollouts,
    ScoredRollout,
    SpeechRenderer,
    mean_over_ranks,
    reward_stats,
    sequence_rewards,
)
from local_lib.train.config import TrainSection

LOG = logging.getLogger(__name__)
COUNTS = ("dpo/pairs", "dpo/skipped_texts", "dpo/draws")  # summed over ranks, not averaged


@dataclass(frozen=True)
class DPOLoopConfig:
    """The YAML file (conf/dpo*.yaml): ``rollout`` (RolloutConfig), ``train`` (TrainSection),
    ``dpo`` (DPOConfig) and ``rewards`` (``local_lib.rewards.build_rewards``)."""

    rollout: RolloutConfig
    train: TrainSection
    rewards: Mapping[str, Any]
    dpo: DPOConfig = field(default_factory=DPOConfig)

    def __post_init__(self) -> None:
        if self.rollout.group_size < 2:
            raise ValueError("a pair needs two samples: rollout.group_size must be >= 2")
        train, every = self.train, self.dpo.refresh_every
        if train.grad_accum != 1:
            raise ValueError("DPO takes pairs_per_step pairs per update: grad_accum must be 1")
        if every and (train.save_every % every or train.num_steps % every):
            raise ValueError(
                f"train.save_every ({train.save_every}) and train.num_steps ({train.num_steps}) "
                f"must be multiples of dpo.refresh_every ({every}): a checkpoint inside a round "
                "could not be resumed exactly"
            )


@dataclass(frozen=True)
class PairBatch:
    """The pairs of one step in the halves layout of ``local_lib.rl.dpo`` (chosen rows, then
    rejected rows), with the reference's log-probs of every row."""

    step: int
    prompts: list[list[int]]
    completion_ids: torch.Tensor  # [2P, T]
    mask: torch.Tensor  # [2P, T] bool
    ref_logp: torch.Tensor  # [2P, T]
    stats: dict[str, float]


class DPOLoop:
    """Pairs and the DPO loss for ``Trainer.fit(loop.loss, loop.batch)``."""

    def __init__(
        self,
        lm: CodecLM,
        renderer: SpeechRenderer,
        rewards: RewardSet,
        pool: PromptPool,
        cfg: DPOLoopConfig,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.lm, self.cfg, self.rank, self.world_size = lm, cfg, rank, world_size
        ro = cfg.rollout
        self.reference = lm.clone(frozen=True)
        sampler = lm if cfg.dpo.refresh_every else self.reference
        prompts = PromptSource(lm, pool, seed, ro.prompts_per_step, ro.prompt_match)
        self.rollouts = Rollouts(sampler, prompts, renderer, rewards, ro, seed, rank)
        self.policy = PolicyLogProbs(lm, ro.temperature)
        self._round: dict[int, PairBatch] = {}

    def batch(self, step: int) -> PairBatch:
        """The pairs of (0-based) optimizer step ``step``; a new round makes those of its steps."""
        if step not in self._round:
            span = self.cfg.dpo.refresh_every or 1
            start = step - step % span
            self._round = {k: self.make_pairs(k) for k in range(start, start + span)}
        return self._round[step]

    def ranking_rewards(self, scored: ScoredRollout) -> torch.Tensor:
        """``[B]`` registry totals (per-token rewards averaged), after the length penalty."""
        lengths = torch.tensor([len(t) for t in scored.rollout.speech_tokens])
        total = sequence_rewards(scored.rewards.total, lengths)
        dpo = self.cfg.dpo
        if dpo.length_penalty:
            expected = torch.tensor([self.lm.expected_speech_length(p) for p in scored.prompts])
            total = apply_length_penalty(
                total, lengths, expected, dpo.length_penalty, dpo.length_tolerance
            )
        return total

    @torch.no_grad()
    def make_pairs(self, step: int) -> PairBatch:
        """Rollout batches until ``pairs_per_step`` pairs (or ``max_draws`` batches)."""
        dpo, group = self.cfg.dpo, self.cfg.rollout.group_size
        draws: list[ScoredRollout] = []
        totals: list[torch.Tensor] = []
        chosen: list[tuple[int, int]] = []  # (draw, row)
        rejected: list[tuple[int, int]] = []
        skipped = 0
        while len(chosen) < dpo.pairs_per_step and len(draws) < dpo.max_draws:
            scored = self.rollouts(step * dpo.max_draws + len(draws))
            total = self.ranking_rewards(scored)
            pairs = preference_pairs(total, group, dpo.min_gap)
            chosen += [(len(draws), i) for i in pairs.chosen]
            rejected += [(len(draws), i) for i in pairs.rejected]
            skipped += len(pairs.skipped)
            draws.append(scored)
            totals.append(total)
        if not chosen:
            raise RuntimeError(self._no_pair_message(step, len(draws)))
        rows = chosen + rejected
        ids, mask = self._completions(draws, rows)
        prompts = [draws[d].prompts[i] for d, i in rows]
        temperature = self.cfg.rollout.temperature
        ref_logp, _ = self.reference.completion_logprobs(prompts, ids, mask, temperature)
        stats = {
            **sample_stats(draws, torch.cat(totals)),
            "reward/chosen": float(torch.stack([totals[d][i] for d, i in chosen]).mean()),
            "reward/rejected": float(torch.stack([totals[d][i] for d, i in rejected]).mean()),
            "dpo/pairs": float(len(chosen)),
            "dpo/skipped_texts": float(skipped),
            "dpo/draws": float(len(draws)),
        }
        LOG.info(
            "step %d (rank %d): %d pairs from %d rollout batches, %d texts skipped",
            step + 1, self.rank, len(chosen), len(draws), skipped,
        )  # fmt: skip
        return PairBatch(step, prompts, ids, mask, ref_logp, stats)

    def _completions(
        self, draws: list[ScoredRollout], rows: list[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The completions of ``rows`` (from batches of different widths), right-padded."""
        tokens = [draws[d].rollout.completion_ids[i][draws[d].rollout.mask[i]] for d, i in rows]
        ids = pad_sequence(tokens, batch_first=True, padding_value=self.lm.layout.pad_id)
        lengths = torch.tensor([len(t) for t in tokens], device=ids.device)
        return ids, torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]

    def _no_pair_message(self, step: int, draws: int) -> str:
        rewards = self.rollouts.rewards
        names = ", ".join(c.name for c in rewards.components)
        cfg = self.cfg
        texts = draws * cfg.rollout.prompts_per_step
        return (
            f"step {step + 1} (rank {self.rank}): none of {texts} texts in {draws} rollout "
            f"batches gave a preference pair: their {cfg.rollout.group_size} samples never "
            f"differed by dpo.min_gap {cfg.dpo.min_gap} (and more than 0) in the reward "
            f"({rewards.combine} of {names}). Lower dpo.min_gap, raise rollout.group_size, "
            "rollout.temperature or dpo.max_draws, or check the reward models."
        )

    def loss(self, model: nn.Module, batch: PairBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """The Trainer's ``loss_fn``; ``model`` is the (possibly DDP-wrapped) PolicyLogProbs."""
        logp, _ = model(batch.prompts, batch.completion_ids, batch.mask)
        loss, stats = dpo_loss(logp, batch.ref_logp, batch.mask, self.cfg.dpo)
        return loss, mean_over_ranks({**batch.stats, **stats}, self.world_size, summed=COUNTS)


def sample_stats(draws: list[ScoredRollout], totals: torch.Tensor) -> dict[str, float]:
    """Rewards, lengths and timings of every sample a step drew (the pairs' and the rest)."""
    seq_lengths = [torch.tensor([len(t) for t in s.rollout.speech_tokens]) for s in draws]
    components = {
        name: torch.cat([
            sequence_rewards(s.rewards.components[name], n)
            for s, n in zip(draws, seq_lengths, strict=True)
        ])
        for name in draws[0].rewards.components
    }  # fmt: skip
    has_eos = torch.cat([s.rollout.has_eos.cpu() for s in draws])
    timings: dict[str, float] = {}
    for s in draws:
        for key, seconds in s.timings.items():
            timings[key] = timings.get(key, 0.0) + seconds
    num_tokens = sum(int(s.rollout.mask.sum()) for s in draws)  # speech and end tokens
    return {
        "reward/mean": float(totals.mean()),
        "reward/std": float(totals.std()),
        **reward_stats(RewardOutput(totals, components), torch.cat(seq_lengths)),
        "completion_len": num_tokens / len(has_eos),
        "truncated_frac": float((~has_eos).float().mean()),
        "rollout_tokens_per_s": num_tokens / max(timings["time/generate"], 1e-9),
        **timings,
    }
