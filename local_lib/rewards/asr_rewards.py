"""Rewards from the reward ASR (Llasa-GRPO): intelligibility as WER and as reference NLL.

The scorer is any object with ``transcribe(wavs) -> list[str]`` and
``nll(wavs, texts) -> Tensor[B]`` (mean token cross-entropy of ``texts`` teacher-forced on
the audio); ``local_lib.models.asr_reward`` provides the real one, tests a fake.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from local_lib.eval.error_rate import word_errors
from local_lib.rewards.registry import RewardReferences, RolloutBatch, register_reward


class AsrScorer(Protocol):
    """Reads audio; one that also has ``transcribe_mel`` and ``nll_mel`` (``[frames, n_mels]``
    log-mel in its ``mel_cfg``) can score a rollout's decoded log-mel without audio."""

    def transcribe(self, wavs: Sequence[np.ndarray | torch.Tensor]) -> list[str]: ...

    def nll(self, wavs: Sequence[np.ndarray | torch.Tensor], texts: list[str]) -> torch.Tensor: ...


def check_reads_mel(scorer: AsrScorer, mel_cfg: Any) -> None:
    """A scorer can take a rollout's decoded log-mel only with methods for it and the same
    log-mel settings as the tokenizer's; checked before any training starts."""
    if not hasattr(scorer, "transcribe_mel"):
        raise ValueError(
            f"{type(scorer).__name__} reads audio only: "
            "use reward_input: audio with this reward ASR"
        )
    if scorer.mel_cfg != mel_cfg:
        raise ValueError(
            f"the reward ASR's log-mel settings {scorer.mel_cfg} differ from the tokenizer's "
            f"{mel_cfg}: use reward_input: audio"
        )


def _mel_scorer(batch: RolloutBatch, scorer: AsrScorer) -> AsrScorer:
    check_reads_mel(scorer, batch.mel_cfg)
    return scorer


def transcripts(batch: RolloutBatch, scorer: AsrScorer) -> list[str]:
    if batch.wavs is not None:
        return scorer.transcribe(batch.wavs)
    return _mel_scorer(batch, scorer).transcribe_mel(batch.mels)


def reference_nll(batch: RolloutBatch, texts: list[str], scorer: AsrScorer) -> torch.Tensor:
    if batch.wavs is not None:
        return scorer.nll(batch.wavs, texts)
    return _mel_scorer(batch, scorer).nll_mel(batch.mels, texts)


def utterance_wer(utt_ids: list[str], refs: list[str], hyps: list[str]) -> torch.Tensor:
    """Per-utterance WER with the evaluators' text normalisation (local_lib.eval.text_norm)."""
    if len(hyps) != len(refs):
        raise ValueError(f"scorer returned {len(hyps)} transcripts for {len(refs)} utterances")
    out = []
    for utt, ref, hyp in zip(utt_ids, refs, hyps, strict=True):
        counts = word_errors(ref, hyp)
        if counts.ref_len == 0:
            raise ValueError(f"utterance {utt!r}: reference text has no words")
        out.append(counts.rate)
    return torch.tensor(out, dtype=torch.float32)


@register_reward("asr_wer")
def asr_wer_reward(
    batch: RolloutBatch, refs: RewardReferences, *, scorer: AsrScorer, scale: float = 3.0
) -> torch.Tensor:
    """``1 - tanh(scale * WER)``: 1 for a perfect transcript, towards 0 as errors grow."""
    wer = utterance_wer(batch.utt_ids, refs.texts, transcripts(batch, scorer))
    return 1.0 - torch.tanh(scale * wer)


@register_reward("asr_nll")
def asr_nll_reward(
    batch: RolloutBatch, refs: RewardReferences, *, scorer: AsrScorer, scale: float = 3.0
) -> torch.Tensor:
    """``exp(-NLL / scale)``: a smooth intelligibility score even when the WER is 0."""
    nll = torch.as_tensor(reference_nll(batch, refs.texts, scorer), dtype=torch.float32).detach()
    if nll.shape != (len(batch.utt_ids),):
        raise ValueError(
            f"scorer.nll returned shape {tuple(nll.shape)}, want ({len(batch.utt_ids)},)"
        )
    return torch.exp(-nll / scale)
