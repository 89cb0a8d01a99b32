"""W3AR word-level rewards from an ASR's decoder cross-attention (docs/methods.md#w3ar).

Per text token ``t`` (row of the attention ``A[t, :n_frames]``):

- peak frame ``j*_t = argmax_j A[t, j]`` (the first one on ties);
- purity ``sum A[t, j]`` over ``j*_t - W//2 .. j*_t + W//2`` (inclusive, clipped to valid frames,
  so ``W + 1`` frames for an even ``W``);
- monotonicity ``tanh(beta * (j*_t - j*_{t-1}))``; the first token has no predecessor and gets
  ``first_monotonicity`` (default 0, neutral: any constant cancels in the group-relative
  advantage, since every sample of the same text shares it);
- reward ``purity_weight * purity + monotonicity_weight * monotonicity``.

Per word (``word_index[b, t]`` maps a token to its word, ``-1`` for tokens in no word; word ids
must appear in order, 0, 1, 2, ...): the reward is the mean over its tokens, its peak the mean of
its tokens' peaks. Word ``k`` covers the ASR frames between the midpoints of its peak and its
neighbours' peaks (made non-decreasing, so a backwards jump in attention gives an empty span rather
than overlapping ones); those boundaries are scaled by ``speech_token_rate / asr_frame_rate`` and
rounded, the first set to 0 and the last to the item's number of speech tokens. The spans are
therefore contiguous ``[start, end)`` ranges covering every speech token exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from local_lib.align._inputs import check_values, count_words, float_array, lengths_array
from local_lib.align._parallel import kernel_threads


@dataclass(frozen=True)
class W3ARConfig:
    """Scalars of the W3AR metrics; the defaults are the paper's."""

    window: int = 6  # purity window W in ASR frames (about 120 ms at 50 Hz)
    beta: float = 0.1
    purity_weight: float = 0.5
    monotonicity_weight: float = 0.5
    first_monotonicity: float = 0.0
    asr_frame_rate: float = 50.0  # attention frames per second (Whisper: 50)
    speech_token_rate: float = 25.0  # policy speech tokens per second (CosyVoice: 25)

    def __post_init__(self) -> None:
        if self.window < 0:
            raise ValueError(f"window must be >= 0 frames, got {self.window}")
        if self.asr_frame_rate <= 0 or self.speech_token_rate <= 0:
            raise ValueError(
                f"frame rates must be positive, got asr_frame_rate={self.asr_frame_rate}, "
                f"speech_token_rate={self.speech_token_rate}"
            )


@dataclass(frozen=True)
class AttentionMetrics:
    """Token and word metrics of a batch; padding holds -1 (indices) or 0 (values)."""

    peak: np.ndarray  # int64 [B, T_text]
    purity: np.ndarray  # float64 [B, T_text]
    monotonicity: np.ndarray  # float64 [B, T_text]
    token_reward: np.ndarray  # float64 [B, T_text]
    word_reward: np.ndarray  # float64 [B, max_words]
    word_span: np.ndarray  # int64 [B, max_words, 2]: speech-token [start, end)
    n_words: np.ndarray  # int64 [B]


@njit(cache=True, nogil=True)
def _token_metrics(
    attention: np.ndarray,
    n_text: int,
    n_frames: int,
    half_window: int,
    beta: float,
    purity_weight: float,
    monotonicity_weight: float,
    first_monotonicity: float,
    peak: np.ndarray,
    purity: np.ndarray,
    monotonicity: np.ndarray,
    reward: np.ndarray,
) -> bool:
    """Fill one item's token rows; False if a valid cell is not finite."""
    bad = False
    for t in range(n_text):
        row = attention[t, :n_frames]
        best = row[0]
        best_at = 0
        for j in range(n_frames):
            value = row[j]
            bad |= not np.abs(value) < np.inf
            if value > best:
                best = value
                best_at = j
        total = 0.0
        for j in range(max(0, best_at - half_window), min(n_frames, best_at + half_window + 1)):
            total += row[j]
        peak[t] = best_at
        purity[t] = total
        if t == 0:
            monotonicity[t] = first_monotonicity
        else:
            monotonicity[t] = np.tanh(beta * (best_at - peak[t - 1]))
        reward[t] = purity_weight * total + monotonicity_weight * monotonicity[t]
    return not bad


@njit(cache=True, nogil=True)
def _word_metrics(
    word_index: np.ndarray,
    n_text: int,
    n_words: int,
    n_speech: int,
    frames_to_tokens: float,
    peak: np.ndarray,
    token_reward: np.ndarray,
    word_reward: np.ndarray,
    word_span: np.ndarray,
) -> None:
    """Mean token reward per word and each word's speech-token span for one item."""
    if n_words == 0:
        return
    count = np.zeros(n_words, np.int64)
    peak_sum = np.zeros(n_words)
    for t in range(n_text):
        w = word_index[t]
        if w >= 0:
            count[w] += 1
            peak_sum[w] += peak[t]
            word_reward[w] += token_reward[t]
    boundary = 0.0
    start = 0
    for w in range(n_words):
        word_reward[w] /= count[w]
        if w + 1 < n_words:
            midpoint = 0.5 * (peak_sum[w] / count[w] + peak_sum[w + 1] / count[w + 1])
            boundary = max(boundary, midpoint)
            end = min(n_speech, int(np.floor(boundary * frames_to_tokens + 0.5)))
        else:
            end = n_speech
        word_span[w, 0] = start
        word_span[w, 1] = end
        start = end


@njit(cache=True, parallel=True)
def _metrics_batch(
    attention: np.ndarray,
    text_lengths: np.ndarray,
    frame_lengths: np.ndarray,
    word_index: np.ndarray,
    n_words: np.ndarray,
    speech_lengths: np.ndarray,
    half_window: int,
    beta: float,
    purity_weight: float,
    monotonicity_weight: float,
    first_monotonicity: float,
    frames_to_tokens: float,
    peak: np.ndarray,
    purity: np.ndarray,
    monotonicity: np.ndarray,
    token_reward: np.ndarray,
    word_reward: np.ndarray,
    word_span: np.ndarray,
    ok: np.ndarray,
) -> None:
    for b in prange(attention.shape[0]):
        ok[b] = _token_metrics(
            attention[b],
            text_lengths[b],
            frame_lengths[b],
            half_window,
            beta,
            purity_weight,
            monotonicity_weight,
            first_monotonicity,
            peak[b],
            purity[b],
            monotonicity[b],
            token_reward[b],
        )
        _word_metrics(
            word_index[b],
            text_lengths[b],
            n_words[b],
            speech_lengths[b],
            frames_to_tokens,
            peak[b],
            token_reward[b],
            word_reward[b],
            word_span[b],
        )


def attention_metrics(
    attention: np.ndarray,
    text_lengths: np.ndarray,
    frame_lengths: np.ndarray,
    word_index: np.ndarray,
    speech_lengths: np.ndarray,
    config: W3ARConfig = W3ARConfig(),
    num_threads: int | None = None,
) -> AttentionMetrics:
    """W3AR token and word metrics for cross-attention ``[B, T_text, T_frames]``.

    ``speech_lengths`` is the number of the policy's speech tokens per item (the spans cover
    exactly those). Rows need not be normalised; every valid cell must be finite.
    ``num_threads`` caps the numba threads (default: numba's setting).
    """
    values = float_array("attention", attention, 3)
    batch, max_text, max_frames = values.shape
    n_text = lengths_array("text_lengths", text_lengths, batch, max_text)
    n_frames = lengths_array("frame_lengths", frame_lengths, batch, max_frames)
    n_speech = lengths_array("speech_lengths", speech_lengths, batch, np.iinfo(np.int64).max, 0)
    word_index = np.asarray(word_index)
    if word_index.shape != (batch, max_text):
        raise ValueError(f"word_index: expected shape {(batch, max_text)}, got {word_index.shape}")
    n_words = count_words(word_index, n_text)
    max_words = int(n_words.max(initial=0))
    peak = np.full((batch, max_text), -1, np.int64)
    purity = np.zeros((batch, max_text))
    monotonicity = np.zeros((batch, max_text))
    token_reward = np.zeros((batch, max_text))
    word_reward = np.zeros((batch, max_words))
    word_span = np.zeros((batch, max_words, 2), np.int64)
    ok = np.ones(batch, np.bool_)
    with kernel_threads(num_threads):
        _metrics_batch(
            values,
            n_text,
            n_frames,
            np.ascontiguousarray(word_index, dtype=np.int64),
            n_words,
            n_speech,
            config.window // 2,
            config.beta,
            config.purity_weight,
            config.monotonicity_weight,
            config.first_monotonicity,
            config.speech_token_rate / config.asr_frame_rate,
            peak,
            purity,
            monotonicity,
            token_reward,
            word_reward,
            word_span,
            ok,
        )
    for b in np.flatnonzero(~ok):
        check_values("attention", values[b, : n_text[b], : n_frames[b]], int(b), False)
    return AttentionMetrics(
        peak=peak,
        purity=purity,
        monotonicity=monotonicity,
        token_reward=token_reward,
        word_reward=word_reward,
        word_span=word_span,
        n_words=n_words,
    )
