"""One DiffRO training step for the codec LM (docs/methods.md#diffro), driven by the shared Trainer.

A step samples a rollout batch with the KV cache (``local_lib.rl.rollout.Rollouts``, no reward
set: nothing is decoded or vocoded), teacher-forces the policy on it to get Gumbel-softmax soft
tokens at every completion position (``CodecLM.soft_tokens_teacher_forced``), feeds them as
``ỹ @ E`` to the frozen Token2Text reward model and minimises ``−R + β·KL`` by plain backprop
(``local_lib.rl.diffro``): the reward's gradient reaches the weights through the soft tokens,
the KL's through the policy's full-vocabulary distribution at each completion token.

Resume: batch ``k`` depends on (seed, k, rank) alone: its prompts and samples come from
``rollout_seed`` and its Gumbel noise from ``noise_seed``, so a resumed run repeats the
uninterrupted one. The frozen reference (only when ``beta > 0``) is the starting policy, taken
before the Trainer loads any checkpoint.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from local_lib.data.speech_tokens import PromptPool
from local_lib.eval.error_rate import word_errors
from local_lib.models.codec_lm import CodecLM
from local_lib.models.soft_tokens import SoftRollout
from local_lib.models.token2text import Token2Text
from local_lib.rl.diffro import (
    DiffROLossConfig,
    DiffRORewardConfig,
    combine_rewards,
    diffro_loss,
    exact_kl,
    masked_mean,
)
from local_lib.rl.rollout import (
    PromptSource,
    RolloutConfig,
    Rollouts,
    ScoredRollout,
    SpeechRenderer,
    mean_over_ranks,
)
from local_lib.train.config import TrainSection

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiffROLoopConfig:
    """The YAML file (conf/diffro*.yaml): ``rollout`` (RolloutConfig; its vocoder and reward
    input keys are unused: DiffRO renders no audio), ``train`` (TrainSection), ``loss``
    (DiffROLossConfig) and ``reward`` (DiffRORewardConfig)."""

    rollout: RolloutConfig
    train: TrainSection
    loss: DiffROLossConfig = field(default_factory=DiffROLossConfig)
    reward: DiffRORewardConfig = field(default_factory=DiffRORewardConfig)


def noise_seed(seed: int, index: int, rank: int) -> int:
    """A 63-bit seed for the Gumbel noise of batch ``index`` on ``rank``: like ``rollout_seed``,
    free of any global RNG, and distinct from it so noise and samples are not drawn alike."""
    digest = hashlib.sha256(f"diffro-gumbel\0{seed}\0{index}\0{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class SoftTokenPolicy(nn.Module):
    """The trainable LM as one module whose forward gives the soft tokens, so the Trainer's DDP
    wrapper sees the forward the loss backpropagates through."""

    def __init__(
        self,
        lm: CodecLM,
        temperature: float,
        tau: float,
        straight_through: bool,
        given_completion: bool = False,
    ) -> None:
        super().__init__()
        self.lm_model = lm.model
        self.codec_lm, self.temperature = lm, temperature
        self.tau, self.straight_through = tau, straight_through
        self.given_completion = given_completion

    def forward(
        self,
        prompts: Sequence[Sequence[int]],
        completion_ids: torch.Tensor,
        mask: torch.Tensor,
        generator: torch.Generator,
    ) -> SoftRollout:
        return self.codec_lm.soft_tokens_teacher_forced(
            prompts, completion_ids, mask, self.tau, self.temperature,
            self.straight_through, generator, self.given_completion,
        )  # fmt: skip

    def train(self, mode: bool = True) -> SoftTokenPolicy:
        """Dropout stays off during RL: the Trainer's ``train()`` must not switch it on."""
        super().train(mode)
        self.lm_model.eval()
        return self


@dataclass(frozen=True)
class DiffROBatch:
    """One rollout batch with the reference's log-probabilities and its rollout statistics."""

    scored: ScoredRollout
    ref_logp: torch.Tensor | None  # [B, T, V], None without a reference model
    stats: dict[str, float]

    @property
    def index(self) -> int:
        return self.scored.index


class DiffROLoop:
    """Rollouts, soft tokens, the Token2Text reward and the loss for
    ``Trainer.fit(loop.loss, loop.batch)``."""

    def __init__(
        self,
        lm: CodecLM,
        renderer: SpeechRenderer,
        reward_model: Token2Text,
        pool: PromptPool,
        cfg: DiffROLoopConfig,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        check_mtr_labels(cfg.reward, reward_model, pool)
        if reward_model.net.num_speech_tokens != lm.layout.num_speech_tokens:
            raise ValueError(
                f"Token2Text reads {reward_model.net.num_speech_tokens} speech tokens, the LM "
                f"has {lm.layout.num_speech_tokens}"
            )
        self.lm, self.cfg, self.seed, self.rank, self.world_size = lm, cfg, seed, rank, world_size
        ro = cfg.rollout
        prompts = PromptSource(lm, pool, seed, ro.prompts_per_step, ro.prompt_match)
        self.rollouts = Rollouts(lm, prompts, renderer, None, ro, seed, rank)
        self.policy = SoftTokenPolicy(
            lm, ro.temperature, cfg.loss.tau, cfg.loss.straight_through, cfg.loss.given_rollout
        )
        self.reward_model = reward_model
        reward_model.net.to(lm.model.device).eval().requires_grad_(False)
        self.reference: CodecLM | None = None
        if cfg.loss.beta > 0:
            self.reference = lm.clone(frozen=True)

    @torch.no_grad()
    def batch(self, index: int) -> DiffROBatch:
        """Rollout batch ``index`` (the Trainer's micro-step): samples, the reference's
        log-probabilities and what Token2Text transcribes from the sampled tokens."""
        scored = self.rollouts(index)
        ro, refs = scored.rollout, scored.references
        timings = dict(scored.timings)
        ref_logp = None
        if self.reference is not None:
            t0 = time.perf_counter()
            _, ref_logp = self.reference.completion_logprobs(
                scored.prompts, ro.completion_ids, ro.mask, self.cfg.rollout.temperature,
                return_logits=True,
            )  # fmt: skip
            timings["time/reference"] = time.perf_counter() - t0
        errors = [
            word_errors(ref, hyp)
            for ref, hyp in zip(refs.texts, self.reward_model.transcribe(ro.speech_tokens))
        ]
        num_tokens = int(ro.mask.sum())
        stats = {
            "t2t_wer": sum(e.errors for e in errors) / max(1, sum(e.ref_len for e in errors)),
            "truncated_frac": float((~ro.has_eos).float().mean()),
            "completion_len": num_tokens / len(scored.prompts),
            "rollout_tokens_per_s": num_tokens / max(timings["time/generate"], 1e-9),
            **timings,
        }
        LOG.info(
            "rollout %d (rank %d): %d completions, %d tokens",
            index, self.rank, len(scored.prompts), num_tokens,
        )  # fmt: skip
        return DiffROBatch(scored, ref_logp, stats)

    def loss(self, model: nn.Module, batch: DiffROBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """The Trainer's ``loss_fn``; ``model`` is the (possibly DDP-wrapped) SoftTokenPolicy."""
        scored, cfg = batch.scored, self.cfg
        ro, refs = scored.rollout, scored.references
        device = self.lm.model.device
        generator = torch.Generator(device=device)
        generator.manual_seed(noise_seed(self.seed, batch.index, self.rank))
        t0 = time.perf_counter()
        soft = model(scored.prompts, ro.completion_ids, ro.mask, generator)
        t1 = time.perf_counter()
        lens = torch.tensor([len(t) for t in ro.speech_tokens])
        out = self.reward_model.run_probs(soft.speech_probs, lens)
        text = self.reward_model.text_logp(out, refs.texts)
        labels = {
            name: self.reward_model.label_logp(out, name, refs.extras[name])
            for name in cfg.reward.mtr
        }
        rewards = combine_rewards(text.values, labels, cfg.reward.mtr)
        t2 = time.perf_counter()
        mask = soft.mask
        kl = None if batch.ref_logp is None else exact_kl(soft.logprobs, batch.ref_logp.to(device))
        loss, stats = diffro_loss(rewards, kl, mask, cfg.loss.beta)
        entropy = -(soft.logprobs.exp() * soft.logprobs).sum(dim=-1)
        stats.update({
            "reward/text": float(text.values.detach().mean()),
            **{f"reward/{k}": float(v.detach().mean()) for k, v in labels.items()},
            "infeasible_frac": float((~text.feasible).float().mean()),
            "entropy": float(masked_mean(entropy.detach(), mask)),
            **batch.stats,
            "time/policy": t1 - t0,
            "time/reward": t2 - t1,
        })  # fmt: skip
        return loss, mean_over_ranks(stats, self.world_size)


def check_mtr_labels(cfg: DiffRORewardConfig, reward_model: Token2Text, pool: PromptPool) -> None:
    """Before any sampling: each MTR label has a head, and the head knows every label of the
    prompt pool (it could not score one it never saw)."""
    for name in cfg.mtr:
        if name not in reward_model.labels:
            raise ValueError(
                f"reward.mtr names {name!r}; the Token2Text model has heads "
                f"{sorted(reward_model.labels)}"
            )
        if name not in pool.labels:
            raise ValueError(
                f"reward.mtr names {name!r}; the prompt data dir has labels {sorted(pool.labels)}"
            )
        unknown = sorted(set(pool.labels[name].values()) - set(reward_model.labels[name]))
        if unknown:
            raise ValueError(f"Token2Text {name} head never saw label(s) {unknown[:5]}")
