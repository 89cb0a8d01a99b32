"""A toy codec-LM method: cross-entropy on the policy's own samples (no reward at all).

It exists to show that a method plugs into the recipes with its own files only: this module
(the ``METHOD`` spec and the loss), ``local_lib/bin/train_toy.py`` (the stage-5 entry point) and
``conf/toy*.yaml`` in a recipe. test/integration/test_method_plugin.py copies the three into a
sandbox and runs the GRPO recipe with ``--method toy``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from local_lib.data.speech_tokens import PromptPool
from local_lib.models.codec_lm import CodecLM
from local_lib.models.speech_tokenizer import SpeechTokenizer
from local_lib.rl.method_spec import MethodSpec
from local_lib.rl.rollout import (
    PolicyLogProbs,
    PromptSource,
    RolloutConfig,
    Rollouts,
    ScoredRollout,
    SpeechRenderer,
)
from local_lib.train.config import TrainSection

METHOD = MethodSpec(family="codec_lm", curve_keys=("loss", "completion_len"))


@dataclass(frozen=True)
class ToyConfig:
    """conf/toy*.yaml: ``rollout`` (RolloutConfig) and ``train`` (TrainSection)."""

    rollout: RolloutConfig
    train: TrainSection


def self_training_loss(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-probability of the sampled tokens (``[B, T]``; ``mask``: positions)."""
    return -(logp * mask).sum() / mask.sum().clamp(min=1)


class ToyLoop:
    """Each step samples a rollout batch and fits the policy to it."""

    def __init__(
        self,
        lm: CodecLM,
        tokenizer: SpeechTokenizer,
        pool: PromptPool,
        cfg: ToyConfig,
        seed: int,
        rank: int,
    ) -> None:
        ro = cfg.rollout
        prompts = PromptSource(lm, pool, seed, ro.prompts_per_step, ro.prompt_match)
        renderer = SpeechRenderer(tokenizer, ro.vocoder_iters, ro.min_wav_s)
        self.rollouts = Rollouts(lm, prompts, renderer, None, ro, seed, rank)
        self.policy = PolicyLogProbs(lm, ro.temperature)

    def batch(self, step: int) -> ScoredRollout:
        return self.rollouts(step)

    def loss(self, model: nn.Module, batch: ScoredRollout) -> tuple[torch.Tensor, dict[str, float]]:
        ro = batch.rollout
        logp, _ = model(batch.prompts, ro.completion_ids, ro.mask)
        mask = ro.mask.to(logp.dtype)
        return self_training_loss(logp, mask), {"completion_len": float(mask.sum(dim=1).mean())}
