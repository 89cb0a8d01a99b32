"""One HPRO training step for the codec LM (docs/methods.md#hpro), driven by the shared Trainer.

A step draws target utterances, each with a speaker prompt of the same speaker in *another*
emotion (``PromptSource``, ``prompt_match: other_emotion``), and teacher-forces the policy on the
target's *reference* speech tokens plus the end marker. At every reference position it takes a
Gumbel-softmax soft token (``CodecLM.soft_tokens_teacher_forced``); the soft tokens, cut to the
reference width (the end marker's column and position dropped), go as ``ỹ @ E`` into the frozen
reward codec beside the reference tokens themselves, so generated and reference frames and words
line up one to one. The terms by level (``local_lib.rl.hpro``) compare the two:

- content stream: ``frame_content`` (content codes) and ``text`` (CTC of the content decoder);
- style stream: ``frame_style`` (style codes), ``word`` (Σ(1 − CCC) of the word head over the
  words, spans from the codec's CTC alignment of the text to the *reference* tokens) and
  ``sentence`` (the emotion head against the target emotion, ``refs.extras["emotion"]``).

The schedule (``loss.schedule``) says which terms count at update ``step`` (the micro-batch index
over ``train.grad_accum``); every term is computed and logged at every step, on or off. Plus
``β · KL(π_θ ‖ π_ref)`` exact over the vocabulary at the reference positions (DiffRO's).

Nothing is sampled: the batch is the reference, and only the soft tokens' noise is random.
Resume: batch ``k`` depends on (seed, k, rank) alone (its targets from ``rollout_seed``, its
Gumbel noise from ``noise_seed``), so a resumed run repeats the uninterrupted one. The frozen
reference LM (only when ``beta > 0``) is the starting policy, taken before the Trainer loads any
checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import get_args

import torch
from torch import nn

from local_lib.data.speech_tokens import PromptPool
from local_lib.eval.error_rate import word_errors
from local_lib.models.codec_lm import CodecLM
from local_lib.models.reward_codec import RewardCodec, RewardCodecOutput
from local_lib.models.token2text import ctc_min_frames
from local_lib.rl.diffro import exact_kl, masked_mean
from local_lib.rl.diffro_loop import SoftTokenPolicy, noise_seed
from local_lib.rl.hpro import (
    HPROLossConfig,
    active_terms,
    frame_mse,
    hpro_loss,
    sentence_loss,
    word_loss,
)
from local_lib.rl.rollout import PromptMatch, PromptSource, mean_over_ranks, rollout_seed
from local_lib.rewards import RewardReferences
from local_lib.train.config import TrainSection

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class HPROBatchConfig:
    """The ``batch:`` section: what one update reads."""

    prompts_per_step: int = 8  # target utterances per micro-batch and DDP rank
    temperature: float = 1.0  # of the policy distribution the soft tokens are drawn from
    prompt_match: PromptMatch = "other_emotion"  # the prompt's emotion vs the target's

    def __post_init__(self) -> None:
        if self.prompts_per_step < 1:
            raise ValueError(f"prompts_per_step must be >= 1, got {self.prompts_per_step}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.prompt_match not in get_args(PromptMatch):
            choices = " | ".join(get_args(PromptMatch))
            raise ValueError(f"prompt_match: {choices}, not {self.prompt_match!r}")


@dataclass(frozen=True)
class HPROLoopConfig:
    """The YAML file (conf/hpro*.yaml): ``batch`` (HPROBatchConfig), ``train`` (TrainSection)
    and ``loss`` (``local_lib.rl.hpro.HPROLossConfig``: β, τ, schedule, steps per phase,
    weights)."""

    train: TrainSection
    batch: HPROBatchConfig = field(default_factory=HPROBatchConfig)
    loss: HPROLossConfig = field(default_factory=HPROLossConfig)


@dataclass(frozen=True)
class ReferenceCodes:
    """What the frozen codec reads from the reference tokens (no gradient)."""

    content: torch.Tensor  # [B, T, Dc]
    style: torch.Tensor  # [B, T, Ds]
    words: torch.Tensor  # [B, W, word_dims] word head over the spans
    spans: torch.Tensor  # [B, W, 2] word token ranges (empty: padding)
    lens: torch.Tensor  # [B] reference tokens per row

    @property
    def word_mask(self) -> torch.Tensor:
        return self.spans[..., 1] > self.spans[..., 0]


@dataclass(frozen=True)
class HPROBatch:
    """One micro-batch: targets, prompts, the teacher-forced completions and their codes."""

    index: int
    utts: list[str]
    prompts: list[list[int]]
    completion_ids: torch.Tensor  # [B, T + 1] reference speech ids then <speech end>, padded
    mask: torch.Tensor  # [B, T + 1]
    references: RewardReferences
    emotion: torch.Tensor  # [B] target emotion class of the codec
    ref: ReferenceCodes
    ref_logp: torch.Tensor | None  # [B, T + 1, V] reference LM, None without one
    stats: dict[str, float]


def teacher_forced_completions(
    lm: CodecLM, tokens: Sequence[Sequence[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, T + 1]`` LM ids (each row's speech tokens then <speech end>, right-padded) and the
    mask over them, in ``Rollout``'s convention; T is the longest row."""
    layout = lm.layout
    width = max(len(t) for t in tokens) + 1
    ids = torch.full((len(tokens), width), layout.pad_id, dtype=torch.long)
    mask = torch.zeros(len(tokens), width, dtype=torch.bool)
    for row, seq in enumerate(tokens):
        full = [*layout.speech_ids(seq), layout.speech_end_id]
        ids[row, : len(full)] = torch.tensor(full)
        mask[row, : len(full)] = True
    return ids, mask


def reference_codes(codec: RewardCodec, tokens: Sequence[Sequence[int]], texts: Sequence[str]):
    """The codec on the reference tokens, with the word spans its content decoder aligns."""
    with torch.no_grad():
        out = codec.run_ids(tokens)
        spans = codec.word_spans(out, texts).to(codec.device)
        words = codec.net.pool_words(out.style_hidden, spans)
    return out, ReferenceCodes(out.content, out.style, words, spans, out.lens)


def level_terms(
    codec: RewardCodec,
    gen: RewardCodecOutput,
    ref: ReferenceCodes,
    texts: Sequence[str],
    emotion: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Every HPRO term of the codec's view of the soft tokens (``gen``, run with ``ref.spans``)
    against the reference's; each reads one stream: content codes and the content decoder, or
    style codes, the word head and the emotion head (both on the style trunk)."""
    if gen.word_dims is None:
        raise ValueError("run the codec on the soft tokens with the reference's word spans")
    mask = gen.mask
    return {
        "frame_content": frame_mse(gen.content, ref.content, mask),
        "frame_style": frame_mse(gen.style, ref.style, mask),
        "word": word_loss(gen.word_dims, ref.words, ref.word_mask.to(gen.word_dims.device)),
        "sentence": sentence_loss(gen.emotion_logits, emotion),
        "text": codec.text_nll(gen, texts).mean(),
    }


def fitting_targets(codec: RewardCodec, pool: PromptPool) -> list[str]:
    """The pool's utterances whose reference tokens can hold their text under the codec's CTC
    (a text that cannot has no text term); sorted."""
    up = codec.net.cfg.upsample
    keep = []
    for utt in sorted(pool.texts):
        ids = codec.units.encode(pool.texts[utt])
        if ids and ctc_min_frames(ids) <= len(pool.tokens[utt]) * up:
            keep.append(utt)
    return keep


class HPROLoop:
    """Targets, teacher-forced soft tokens, the reward codec's terms and the loss for
    ``Trainer.fit(loop.loss, loop.batch)``."""

    def __init__(
        self,
        lm: CodecLM,
        codec: RewardCodec,
        pool: PromptPool,
        cfg: HPROLoopConfig,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if codec.net.num_speech_tokens != lm.layout.num_speech_tokens:
            raise ValueError(
                f"the reward codec reads {codec.net.num_speech_tokens} speech tokens, the LM "
                f"has {lm.layout.num_speech_tokens}"
            )
        check_emotions(codec, pool)
        self.lm, self.codec, self.pool, self.cfg = lm, codec, pool, cfg
        self.seed, self.rank, self.world_size = seed, rank, world_size
        targets = fitting_targets(codec, pool)
        if not targets:
            raise ValueError(f"{pool.source}: no utterance's tokens can hold its text")
        if len(targets) < len(pool.texts):
            LOG.warning(
                "%d of %d utterances left out as targets: too few tokens for their text",
                len(pool.texts) - len(targets), len(pool.texts),
            )  # fmt: skip
        b = cfg.batch
        self.prompts = PromptSource(lm, pool, seed, b.prompts_per_step, b.prompt_match, targets)
        self.policy = SoftTokenPolicy(lm, b.temperature, cfg.loss.tau, cfg.loss.straight_through)
        codec.net.to(lm.model.device).eval().requires_grad_(False)
        self.reference: CodecLM | None = None
        if cfg.loss.beta > 0:
            self.reference = lm.clone(frozen=True)

    def step_of(self, index: int) -> int:
        """The update a micro-batch belongs to, which the schedule reads."""
        return index // self.cfg.train.grad_accum

    @torch.no_grad()
    def batch(self, index: int) -> HPROBatch:
        """Micro-batch ``index``: targets, prompts, the reference's completions, the codec's
        reading of the reference tokens and the reference LM's log-probabilities."""
        t0 = time.perf_counter()
        drawn = self.prompts.draw(
            torch.Generator().manual_seed(rollout_seed(self.seed, index, self.rank))
        )
        refs = drawn.references
        tokens = [self.pool.tokens[u] for u in drawn.utts]
        completion_ids, mask = teacher_forced_completions(self.lm, tokens)
        out, ref = reference_codes(self.codec, tokens, refs.texts)
        emotion = self.codec.emotion_index(refs.extras["emotion"])
        t1 = time.perf_counter()
        ref_logp = None
        if self.reference is not None:
            _, ref_logp = self.reference.completion_logprobs(
                drawn.prompt_ids, completion_ids, mask, self.cfg.batch.temperature,
                return_logits=True,
            )  # fmt: skip
        hits = out.emotion_logits.argmax(dim=-1) == emotion
        stats = {
            "ref_emotion_acc": float(hits.float().mean()),
            "ref_codec_wer": codec_wer(self.codec, out, refs.texts),
            "ref_len": sum(map(len, tokens)) / len(tokens),
            "time/codec_ref": t1 - t0,
            "time/reference": time.perf_counter() - t1,
        }
        return HPROBatch(
            index, drawn.utts, drawn.prompt_ids, completion_ids, mask, refs, emotion, ref,
            ref_logp, stats,
        )  # fmt: skip

    def loss(self, model: nn.Module, batch: HPROBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """The Trainer's ``loss_fn``; ``model`` is the (possibly DDP-wrapped) SoftTokenPolicy."""
        cfg = self.cfg.loss
        device = self.lm.model.device
        generator = torch.Generator(device=device)
        generator.manual_seed(noise_seed(self.seed, batch.index, self.rank))
        t0 = time.perf_counter()
        soft = model(batch.prompts, batch.completion_ids, batch.mask, generator)
        t1 = time.perf_counter()
        width = batch.ref.content.shape[1]  # the reference width: the end marker's column goes
        gen = self.codec.run_probs(soft.speech_probs[:, :width], batch.ref.lens, batch.ref.spans)
        terms = level_terms(self.codec, gen, batch.ref, batch.references.texts, batch.emotion)
        t2 = time.perf_counter()
        kl = None if batch.ref_logp is None else exact_kl(soft.logprobs, batch.ref_logp.to(device))
        active = active_terms(cfg, self.step_of(batch.index))
        loss, stats = hpro_loss(terms, active, cfg.weights, kl, soft.mask, cfg.beta)
        logp = soft.logprobs.detach()
        ids = batch.completion_ids.to(device)
        ref_token_logp = logp.gather(-1, ids[..., None])[..., 0]
        entropy = -(logp.exp() * logp).sum(dim=-1)
        hits = gen.emotion_logits.detach().argmax(dim=-1) == batch.emotion
        stats.update({
            "emotion_acc": float(hits.float().mean()),
            "codec_wer": codec_wer(self.codec, gen, batch.references.texts),
            "ref_nll": float(-masked_mean(ref_token_logp, soft.mask)),
            "entropy": float(masked_mean(entropy, soft.mask)),
            **{f"on/{name}": float(name in active) for name in terms},
            **batch.stats,
            "time/policy": t1 - t0,
            "time/reward": t2 - t1,
        })  # fmt: skip
        return loss, mean_over_ranks(stats, self.world_size)


@torch.no_grad()
def codec_wer(codec: RewardCodec, out: RewardCodecOutput, texts: Sequence[str]) -> float:
    """Word error rate of the content decoder's greedy transcripts."""
    errors = [word_errors(r, h) for r, h in zip(texts, codec.transcripts(out), strict=True)]
    return sum(e.errors for e in errors) / max(1, sum(e.ref_len for e in errors))


def check_emotions(codec: RewardCodec, pool: PromptPool) -> None:
    """Before any step: the prompt pool has emotion labels and the codec's emotion head knows
    every one of them (it could not score one it never saw)."""
    if "emotion" not in pool.labels:
        raise ValueError(f"{pool.source}: HPRO needs the target emotions (utt2emo in the data dir)")
    unknown = sorted(set(pool.labels["emotion"].values()) - set(codec.emotions))
    if unknown:
        raise ValueError(f"the reward codec's emotion head never saw {unknown[:5]}")
