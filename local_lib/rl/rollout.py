"""The rollout path every codec-LM method shares: prompts -> samples -> speech -> rewards.

A method (GRPO, W3AR, DPO, ...) asks ``Rollouts`` for batch ``k`` and gets back what the policy
said and what the reward registry made of it; how rewards become advantages, pairs or a
differentiable loss is the method's own business (``local_lib.rl.grpo_loop`` for GRPO).

Batch ``k`` depends only on (seed, k, rank): its targets and samples come from generators seeded
by ``rollout_seed``, so a resumed run repeats the uninterrupted one.

Speech reaches the rewards as audio (tokenizer mel decoder, then Griffin-Lim) or, with
``reward_input: mel``, as the decoder's log-mel itself: a reward model that reads log-mel then
skips the vocoder and its own feature analysis (``local_lib.bin.benchmark_reward_path``
measures both).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from local_lib.data.speech_tokens import PromptPool
from local_lib.models.codec_lm import CodecLM, Rollout
from local_lib.models.speech_tokenizer import KMeansMelTokenizer
from local_lib.models.vocoder import GriffinLimVocoder
from local_lib.rewards import RewardOutput, RewardReferences, RewardSet, RolloutBatch

RewardInput = Literal["audio", "mel"]
PromptMatch = Literal["speaker", "same_emotion", "other_emotion"]


@dataclass(frozen=True)
class RolloutConfig:
    """The ``rollout:`` section of a codec-LM method's YAML."""

    group_size: int = 8  # completions per target text
    prompts_per_step: int = 2  # target texts per rollout batch and rank
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_new_tokens: int = 400
    vocoder_iters: int = 32  # Griffin-Lim iterations of the reward audio
    min_wav_s: float = 0.25  # shorter speech is padded with silence so a reward model can read it
    reward_input: RewardInput = "audio"
    prompt_match: PromptMatch = "speaker"  # the emotion ones need utt2emo in the data dir

    def __post_init__(self) -> None:
        if self.group_size < 1 or self.prompts_per_step < 1 or self.max_new_tokens < 1:
            raise ValueError("need group_size, prompts_per_step and max_new_tokens >= 1")
        if self.reward_input not in ("audio", "mel"):
            raise ValueError(f"reward_input must be audio or mel, got {self.reward_input!r}")
        if self.prompt_match not in ("speaker", "same_emotion", "other_emotion"):
            raise ValueError(
                f"prompt_match: speaker, same_emotion or other_emotion, got {self.prompt_match!r}"
            )


def rollout_seed(seed: int, index: int, rank: int) -> int:
    """A 63-bit seed for rollout batch ``index`` on ``rank``, independent of any global RNG."""
    digest = hashlib.sha256(f"grpo\0{seed}\0{index}\0{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


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


class SpeechRenderer:
    """Speech tokens -> log-mel (the tokenizer's decoder) -> waveform (Griffin-Lim).

    Completions shorter than ``min_wav_s`` (even empty ones) are padded with silent mel frames
    first: Griffin-Lim needs more than half an FFT window, and a reward ASR a few frames.
    """

    def __init__(self, tokenizer: KMeansMelTokenizer, vocoder_iters: int, min_wav_s: float) -> None:
        mel_cfg = tokenizer.mel_cfg
        self.tokenizer, self.mel_cfg = tokenizer, mel_cfg
        self.vocoder = GriffinLimVocoder(mel_cfg, n_iter=vocoder_iters)
        self.sample_rate = mel_cfg.sample_rate
        min_samples = max(min_wav_s * self.sample_rate, mel_cfg.n_fft)
        self.min_frames = math.ceil(min_samples / mel_cfg.hop_length) + 1
        self.silence = math.log(mel_cfg.log_floor)

    def mel(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[frames, n_mels]`` log-mel of one completion, padded to the minimum length."""
        n_mels = self.mel_cfg.n_mels
        mel = self.tokenizer.decode(tokens) if len(tokens) else torch.zeros(0, n_mels)
        if len(mel) < self.min_frames:
            pad = torch.full((self.min_frames - len(mel), n_mels), self.silence)
            mel = torch.cat([mel, pad])
        return mel

    def wav(self, mel: torch.Tensor) -> np.ndarray:
        return self.vocoder(mel.numpy())

    def __call__(self, tokens: torch.Tensor) -> np.ndarray:
        return self.wav(self.mel(tokens))


class UpdateTimer:
    """Times each update from the loss's forward to the end of ``optimizer.step()`` (backward
    included). The Trainer logs a step's stats before its backward, so ``time/update`` in the
    record of step ``n`` is the update time of step ``n - 1``."""

    def __init__(self) -> None:
        self._start: float | None = None
        self.last_s: float | None = None

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.register_step_post_hook(self._stamp)

    def _stamp(self, *_: Any) -> None:
        if self._start is not None:
            self.last_s = time.perf_counter() - self._start

    def start(self) -> None:
        self._start = time.perf_counter()

    def add_to(self, stats: dict[str, float]) -> None:
        if self.last_s is not None:
            stats["time/update"] = self.last_s


@dataclass(frozen=True)
class PromptBatch:
    """The targets of one rollout batch, each with its prompt ids and reference labels."""

    utts: list[str]  # target utterances, one per prompt (not repeated per sample)
    prompt_ids: list[list[int]]
    references: RewardReferences  # one entry per target


class PromptSource:
    """Targets drawn from a prompt pool; each target's speaker prompt is fixed for the run.

    ``match`` narrows the prompt to the same speaker in the target's emotion (``same_emotion``)
    or in another emotion (``other_emotion``: the emotion must then come from an instruction,
    it cannot be copied from the prompt; an emotion-controlled LM gets the target's emotion
    instruction, ``CodecLM.pool_prompt_ids``). Labels the pool has (emotion, speaker, gender, ...)
    travel with the texts to the rewards as ``RewardReferences.extras``. ``targets`` narrows
    the targets to some of the pool's utterances (None: all); prompts still come from all.
    """

    def __init__(
        self,
        lm: CodecLM,
        pool: PromptPool,
        seed: int,
        per_batch: int,
        match: PromptMatch = "speaker",
        targets: Collection[str] | None = None,
    ) -> None:
        self.lm, self.pool, self.per_batch = lm, pool, per_batch
        self.targets = sorted(pool.texts if targets is None else targets)
        unknown = [u for u in self.targets if u not in pool.texts]
        if unknown or not self.targets:
            raise ValueError(f"targets: none given, or not in {pool.source}: {unknown[:3]}")
        self.prompt_of = pool.pick(self.targets, seed, match=match)

    def draw(self, generator: torch.Generator) -> PromptBatch:
        """``per_batch`` distinct targets (repeats only when the pool is smaller)."""
        order: list[int] = []
        while len(order) < self.per_batch:
            order += torch.randperm(len(self.targets), generator=generator).tolist()
        utts = [self.targets[i] for i in order[: self.per_batch]]
        prompts = [self.lm.pool_prompt_ids(self.pool, utt, self.prompt_of[utt]) for utt in utts]
        return PromptBatch(utts, prompts, self.pool.references(utts))


@dataclass(frozen=True)
class ScoredRollout:
    """One rollout batch: ``len(targets) * group_size`` completions, group-major."""

    index: int
    targets: list[str]
    prompts: list[list[int]]  # per completion
    rollout: Rollout
    references: RewardReferences  # per completion
    rewards: RewardOutput | None  # None when the rollout was made without a reward set
    timings: dict[str, float]

    @property
    def group_size(self) -> int:
        return len(self.prompts) // len(self.targets)

    def utt_ids(self) -> list[str]:
        return [f"{utt}#{k}" for utt in self.targets for k in range(self.group_size)]


class Rollouts:
    """Rollout batch ``index`` of a run: sampled with the KV cache, rendered, scored."""

    def __init__(
        self,
        lm: CodecLM,
        prompts: PromptSource,
        renderer: SpeechRenderer,
        rewards: RewardSet | None,
        cfg: RolloutConfig,
        seed: int,
        rank: int = 0,
    ) -> None:
        self.lm, self.prompts, self.renderer, self.rewards = lm, prompts, renderer, rewards
        self.cfg, self.seed, self.rank = cfg, seed, rank

    @torch.no_grad()
    def __call__(self, index: int) -> ScoredRollout:
        cfg, group = self.cfg, self.cfg.group_size
        seed = rollout_seed(self.seed, index, self.rank)
        batch = self.prompts.draw(torch.Generator().manual_seed(seed))
        prompts = [ids for ids in batch.prompt_ids for _ in range(group)]
        refs = repeat_references(batch.references, group)
        sampler = torch.Generator(device=self.lm.model.device).manual_seed(seed)
        self.lm.model.eval()
        t0 = time.perf_counter()
        rollout = self.lm.sample(
            prompts, cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.top_p, generator=sampler
        )
        timings = {"time/generate": time.perf_counter() - t0}
        scored = ScoredRollout(index, batch.utts, prompts, rollout, refs, None, timings)
        if self.rewards is None:
            return scored
        reward_batch = self.reward_batch(scored)
        t0 = time.perf_counter()
        rewards = self.rewards(reward_batch, refs)
        timings["time/reward"] = time.perf_counter() - t0
        return ScoredRollout(index, batch.utts, prompts, rollout, refs, rewards, timings)

    def reward_batch(self, scored: ScoredRollout) -> RolloutBatch:
        """The rollout as the rewards read it: decoded log-mel and, on the audio path, audio.
        Adds ``time/decode`` and ``time/vocode`` to the rollout's timings."""
        tokens = scored.rollout.speech_tokens
        t0 = time.perf_counter()
        mels = [self.renderer.mel(t) for t in tokens]
        t1 = time.perf_counter()
        wavs = [self.renderer.wav(m) for m in mels] if self.cfg.reward_input == "audio" else None
        scored.timings.update({"time/decode": t1 - t0, "time/vocode": time.perf_counter() - t1})
        return RolloutBatch(
            scored.utt_ids(), wavs, self.renderer.sample_rate, tokens,
            mels=mels if wavs is None else None, mel_cfg=self.renderer.mel_cfg,
        )  # fmt: skip


def repeat_references(refs: RewardReferences, times: int) -> RewardReferences:
    """Each target's references ``times`` times in a row (group-major, like the samples)."""
    return RewardReferences(
        [t for t in refs.texts for _ in range(times)],
        {k: [v for v in values for _ in range(times)] for k, values in refs.extras.items()},
    )


def token_rewards(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A reward at completion-token resolution: ``[B]`` is given to every token of its sequence,
    ``[B, T']`` (one value per speech token, e.g. a word's reward over the tokens it covers) is
    placed on the first ``T'`` completion positions. Positions outside ``mask`` are 0."""
    out = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    values = values.to(out.device, torch.float32)
    if values.dim() == 1:
        out += values[:, None]
    elif values.dim() == 2 and values.shape[1] <= mask.shape[1]:
        out[:, : values.shape[1]] = values
    else:
        raise ValueError(
            f"rewards of shape {tuple(values.shape)} do not fit completions {tuple(mask.shape)}"
        )
    return out * mask.to(out.dtype)


def sequence_rewards(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """A sequence score from a per-token reward ``[B, T']``: its mean over each sequence's
    ``lengths`` first tokens (``[B]`` passes through)."""
    if values.dim() == 1:
        return values
    keep = torch.arange(values.shape[1])[None, :] < lengths[:, None]
    return (values * keep).sum(dim=1) / lengths.clamp(min=1).to(values.dtype)


def reward_stats(rewards: RewardOutput, lengths: torch.Tensor) -> dict[str, Any]:
    """Mean and std of each reward component (per-token ones averaged per sequence first)."""
    stats: dict[str, float] = {}
    for name, values in rewards.components.items():
        seq = sequence_rewards(values, lengths)
        stats[f"reward/{name}"] = float(seq.mean())
        stats[f"reward/{name}_std"] = float(seq.std())
    return stats


def mean_over_ranks(
    stats: dict[str, float], world_size: int, summed: Collection[str] = ()
) -> dict[str, float]:
    """Every rank's rollouts count in the log: each stat is averaged over the ranks, except the
    counts named in ``summed``, which are added up. Every rank must log the same keys."""
    if world_size == 1:
        return stats
    keys = sorted(stats)
    values = torch.tensor([stats[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(values)
    return {
        k: float(v) if k in summed else float(v) / world_size
        for k, v in zip(keys, values.tolist(), strict=True)
    }
