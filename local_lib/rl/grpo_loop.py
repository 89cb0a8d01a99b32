"""One GRPO training step for the codec LM (METHODS.md §1), driven by the shared Trainer.

A step draws ``prompts_per_step`` texts (each with its speaker prompt), samples ``group_size``
completions per text with the KV cache, turns their speech tokens into audio (tokenizer mel
decoder, then Griffin-Lim), scores them through the reward registry, and minimises the clipped
GRPO loss of ``local_lib.rl.grpo``. A rollout batch serves ``num_iterations`` optimizer
updates; its log-probs under the sampling policy are the "old" ones of the ratio.

Resume: the rollout of batch ``k`` draws its texts and samples from a generator seeded by
(seed, k, rank) alone, and checkpoints fall on rollout boundaries, so a resumed run repeats the
uninterrupted one. The frozen reference (only when ``beta > 0``) is the starting policy, taken
before the Trainer loads any checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from local_lib.data.speech_tokens import PromptPool
from local_lib.models.codec_lm import CodecLM, Rollout
from local_lib.models.config_yaml import load_yaml_mapping
from local_lib.models.speech_tokenizer import KMeansMelTokenizer
from local_lib.models.vocoder import GriffinLimVocoder
from local_lib.rewards import RewardReferences, RewardSet, RolloutBatch
from local_lib.rl.grpo import (
    GRPOConfig,
    apply_length_penalty,
    apply_truncation_penalty,
    group_advantages,
    grpo_loss,
)

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class GRPOLoopConfig:
    """The YAML file (conf/grpo*.yaml): sampling, schedule, ``loss`` (GRPOConfig) and ``rewards``
    (``local_lib.rewards.build_rewards``)."""

    loss: GRPOConfig
    rewards: Mapping[str, Any]
    group_size: int = 8
    prompts_per_step: int = 2  # texts per step and rank
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_new_tokens: int = 400
    num_steps: int = 100
    num_iterations: int = 1  # optimizer updates per rollout batch
    lr: float = 1e-5
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    save_every: int = 10
    log_every: int = 1
    vocoder_iters: int = 32
    min_wav_s: float = 0.25  # shorter audio is zero-padded so the reward ASR can encode it

    def __post_init__(self) -> None:
        if self.group_size < 2 or self.prompts_per_step < 1 or self.num_iterations < 1:
            raise ValueError("need group_size >= 2, prompts_per_step >= 1, num_iterations >= 1")
        if self.save_every % self.num_iterations or self.num_steps % self.num_iterations:
            raise ValueError(
                f"save_every ({self.save_every}) and num_steps ({self.num_steps}) must be "
                f"multiples of num_iterations ({self.num_iterations}): a checkpoint inside a "
                "rollout batch could not be resumed exactly"
            )

    @classmethod
    def from_yaml(cls, path: Path) -> GRPOLoopConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        data = load_yaml_mapping(path, fields)
        for key in ("loss", "rewards"):
            if not isinstance(data.get(key), Mapping):
                raise ValueError(f"{path}: '{key}' must be a mapping")
        loss = dict(data.pop("loss"))
        loss.setdefault("max_completion_length", data.get("max_new_tokens", cls.max_new_tokens))
        try:
            return cls(loss=GRPOConfig(**loss), **data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from err


class PolicyLogProbs(nn.Module):
    """The trainable LM as one module whose forward is the loss's forward, so the Trainer's DDP
    wrapper sees it (gradients are all-reduced only through a wrapped forward)."""

    def __init__(self, lm: CodecLM, temperature: float) -> None:
        super().__init__()
        self.lm_model = lm.model
        self.codec_lm, self.temperature = lm, temperature

    def forward(
        self, prompts: Sequence[Sequence[int]], completion_ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.codec_lm.completion_logprobs(
            prompts, completion_ids, mask, self.temperature, return_logits=True
        )

    def train(self, mode: bool = True) -> PolicyLogProbs:
        """Dropout stays off during RL: the Trainer's ``train()`` must not switch it on."""
        super().train(mode)
        self.lm_model.eval()
        return self


@dataclass(frozen=True)
class GroupRollout:
    """One rollout batch: ``prompts_per_step * group_size`` completions, group-major."""

    index: int
    prompts: list[list[int]]
    rollout: Rollout
    advantages: torch.Tensor
    ref_logp: torch.Tensor | None
    stats: dict[str, float]


def rollout_seed(seed: int, index: int, rank: int) -> int:
    """A 63-bit seed for rollout batch ``index`` on ``rank``, independent of any global RNG."""
    digest = hashlib.sha256(f"grpo\0{seed}\0{index}\0{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class SpeechDecoder:
    """Speech tokens -> waveform through the tokenizer's mel decoder and Griffin-Lim.

    Completions shorter than ``min_wav_s`` (even empty ones) are padded with silent mel frames
    first: Griffin-Lim needs more than half an FFT window, and the reward ASR a few frames.
    """

    def __init__(self, tokenizer: KMeansMelTokenizer, vocoder_iters: int, min_wav_s: float) -> None:
        mel_cfg = tokenizer.mel_cfg
        self.tokenizer = tokenizer
        self.vocoder = GriffinLimVocoder(mel_cfg, n_iter=vocoder_iters)
        self.sample_rate = mel_cfg.sample_rate
        min_samples = max(min_wav_s * self.sample_rate, mel_cfg.n_fft)
        self.min_frames = math.ceil(min_samples / mel_cfg.hop_length) + 1
        self.silence = math.log(mel_cfg.log_floor)

    def __call__(self, tokens: torch.Tensor) -> np.ndarray:
        n_mels = self.tokenizer.mel_cfg.n_mels
        mel = self.tokenizer.decode(tokens) if len(tokens) else torch.zeros(0, n_mels)
        if len(mel) < self.min_frames:
            pad = torch.full((self.min_frames - len(mel), n_mels), self.silence)
            mel = torch.cat([mel, pad])
        return self.vocoder(mel.numpy())


class GRPOLoop:
    """Rollouts, rewards and the loss for ``Trainer.fit(loop.loss, loop.batch)``."""

    def __init__(
        self,
        lm: CodecLM,
        decoder: SpeechDecoder,
        rewards: RewardSet,
        pool: PromptPool,
        cfg: GRPOLoopConfig,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.lm, self.decoder, self.rewards, self.pool = lm, decoder, rewards, pool
        self.cfg, self.seed, self.rank, self.world_size = cfg, seed, rank, world_size
        self.policy = PolicyLogProbs(lm, cfg.temperature)
        self.reference: CodecLM | None = None
        if cfg.loss.beta > 0:
            self.reference = copy.copy(lm)  # same layout and tokenizer, its own frozen weights
            self.reference.model = copy.deepcopy(lm.model).eval().requires_grad_(False)
        self.targets = sorted(pool.texts)
        self.prompt_of = pool.pick(self.targets, seed)
        self._current: GroupRollout | None = None
        self._update_start: float | None = None
        self._last_update_s: float | None = None
        self._timed_index: int | None = None

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Time each update from the loss's forward to the end of ``optimizer.step()`` (backward
        included). The Trainer logs a step's stats before its backward, so ``time/update`` in
        the record of step ``n`` is the update time of step ``n - 1``."""

        def stamp(*_: Any) -> None:
            if self._update_start is not None:
                self._last_update_s = time.perf_counter() - self._update_start

        optimizer.register_step_post_hook(stamp)

    def batch(self, step: int) -> GroupRollout:
        """The rollout batch for (0-based) optimizer step ``step``; made once per batch."""
        index = step // self.cfg.num_iterations
        if self._current is None or self._current.index != index:
            self._current = self.make_rollout(index)
        return self._current

    @torch.no_grad()
    def make_rollout(self, index: int) -> GroupRollout:
        cfg, group = self.cfg, self.cfg.group_size
        seed = rollout_seed(self.seed, index, self.rank)
        utts = self._draw_targets(torch.Generator().manual_seed(seed))
        texts = [self.pool.texts[u] for u in utts for _ in range(group)]
        prompts = []
        for utt in utts:
            prompt = self.prompt_of[utt]
            texts_of = self.pool.texts
            ids = self.lm.prompt_ids(texts_of[utt], texts_of[prompt], self.pool.tokens[prompt])
            prompts += [ids] * group
        device = self.lm.model.device
        sampler = torch.Generator(device=device).manual_seed(seed)
        self.lm.model.eval()
        t0 = time.perf_counter()
        rollout = self.lm.sample(
            prompts, cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.top_p, generator=sampler
        )
        t1 = time.perf_counter()
        wavs = [self.decoder(tokens) for tokens in rollout.speech_tokens]
        t2 = time.perf_counter()
        utt_ids = [f"{utt}#{k}" for utt in utts for k in range(group)]
        scored = self.rewards(
            RolloutBatch(utt_ids, wavs, self.decoder.sample_rate, rollout.speech_tokens),
            RewardReferences(texts),
        )
        t3 = time.perf_counter()
        total = apply_truncation_penalty(
            scored.total.reshape(len(utt_ids)), rollout.has_eos.cpu(), cfg.loss.truncation_penalty
        )
        if cfg.loss.length_penalty:
            lengths = torch.tensor([len(t) for t in rollout.speech_tokens])
            expected = torch.tensor([self.lm.expected_speech_length(p) for p in prompts])
            total = apply_length_penalty(
                total, lengths, expected, cfg.loss.length_penalty, cfg.loss.length_tolerance
            )
        adv = group_advantages(total, group, cfg.loss.scale_rewards)
        ref_logp = None
        if self.reference is not None:
            ref_logp, _ = self.reference.completion_logprobs(
                prompts, rollout.completion_ids, rollout.mask, cfg.temperature
            )
        num_tokens = int(rollout.mask.sum())
        stats = {
            "reward/mean": float(total.mean()),
            "reward/std": float(total.std()),
            "reward/group_std": float(total.view(-1, group).std(dim=1).mean()),
            "zero_var_groups": float(adv.zero_std_groups),
            "truncated_frac": float((~rollout.has_eos).float().mean()),
            "completion_len": num_tokens / len(utt_ids),
            "rollout_tokens_per_s": num_tokens / max(t1 - t0, 1e-9),
            "time/generate": t1 - t0,
            "time/vocode": t2 - t1,
            "time/reward": t3 - t2,
        }
        for name, values in scored.components.items():
            values = values.reshape(len(utt_ids), -1).mean(dim=1)
            stats[f"reward/{name}"] = float(values.mean())
            stats[f"reward/{name}_std"] = float(values.std())
        LOG.info(
            "rollout %d (rank %d): %d completions, %d tokens",
            index, self.rank, len(utt_ids), num_tokens,
        )  # fmt: skip
        return GroupRollout(index, prompts, rollout, adv.values.to(device), ref_logp, stats)

    def _draw_targets(self, generator: torch.Generator) -> list[str]:
        """``prompts_per_step`` distinct target utterances (repeats only if the set is smaller)."""
        order: list[int] = []
        while len(order) < self.cfg.prompts_per_step:
            order += torch.randperm(len(self.targets), generator=generator).tolist()
        return [self.targets[i] for i in order[: self.cfg.prompts_per_step]]

    def loss(self, model: nn.Module, batch: GroupRollout) -> tuple[torch.Tensor, dict[str, float]]:
        """The Trainer's ``loss_fn``; ``model`` is the (possibly DDP-wrapped) PolicyLogProbs."""
        self._update_start = time.perf_counter()
        ro = batch.rollout
        logp, logits = model(batch.prompts, ro.completion_ids, ro.mask)
        loss, loss_stats = grpo_loss(
            logp, ro.mask, batch.advantages, self.cfg.loss,
            old_logp=ro.logprobs, ref_logp=batch.ref_logp, logits=logits,
        )  # fmt: skip
        stats = dict(batch.stats)
        if self._timed_index == batch.index:  # rollout costs count once, on its first update
            stats.update({"time/generate": 0.0, "time/vocode": 0.0, "time/reward": 0.0})
        self._timed_index = batch.index
        stats["clip_frac"] = loss_stats["clip_fraction"]
        stats["entropy"] = loss_stats["entropy"]
        if "kl" in loss_stats:
            stats["kl"] = loss_stats["kl"]
        if self._last_update_s is not None:
            stats["time/update"] = self._last_update_s
        return loss, self._mean_over_ranks(stats)

    def _mean_over_ranks(self, stats: dict[str, float]) -> dict[str, float]:
        """Every rank's rollouts count in the log: means over ranks, group counts summed."""
        if self.world_size == 1:
            return stats
        keys = sorted(stats)
        values = torch.tensor([stats[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(values)
        return {
            k: float(v) if k == "zero_var_groups" else float(v) / self.world_size
            for k, v in zip(keys, values.tolist(), strict=True)
        }
