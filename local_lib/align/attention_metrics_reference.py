"""Plain NumPy W3AR metrics: the specification :mod:`attention_metrics` is tested against."""

from __future__ import annotations

import numpy as np

from local_lib.align._inputs import count_words
from local_lib.align.attention_metrics import AttentionMetrics, W3ARConfig


def _word_spans(word_peak: np.ndarray, n_speech: int, frames_to_tokens: float) -> np.ndarray:
    """[start, end) speech-token span per word from the words' mean peak frames."""
    midpoints = np.maximum.accumulate(0.5 * (word_peak[:-1] + word_peak[1:]))
    inner = np.floor(midpoints * frames_to_tokens + 0.5).astype(np.int64)
    edges = np.concatenate(([0], np.minimum(inner, n_speech), [n_speech]))
    return np.stack([edges[:-1], edges[1:]], axis=1)


def attention_metrics_reference(
    attention: np.ndarray,
    text_lengths: np.ndarray,
    frame_lengths: np.ndarray,
    word_index: np.ndarray,
    speech_lengths: np.ndarray,
    config: W3ARConfig = W3ARConfig(),
) -> AttentionMetrics:
    """Same contract as :func:`local_lib.align.attention_metrics.attention_metrics`."""
    attention = np.asarray(attention)
    word_index = np.asarray(word_index)
    batch, max_text, _ = attention.shape
    n_words = count_words(word_index, np.asarray(text_lengths))
    max_words = int(n_words.max(initial=0))
    peak = np.full((batch, max_text), -1, np.int64)
    purity = np.zeros((batch, max_text))
    monotonicity = np.zeros((batch, max_text))
    token_reward = np.zeros((batch, max_text))
    word_reward = np.zeros((batch, max_words))
    word_span = np.zeros((batch, max_words, 2), np.int64)
    half = config.window // 2
    for b in range(batch):
        n_text, n_frames = int(text_lengths[b]), int(frame_lengths[b])
        a = attention[b, :n_text, :n_frames].astype(np.float64)
        j = np.argmax(a, axis=1)
        frames = np.arange(n_frames)
        in_window = np.abs(frames[None, :] - j[:, None]) <= half
        pur = np.where(in_window, a, 0.0).sum(axis=1)
        mono = np.concatenate(([config.first_monotonicity], np.tanh(config.beta * np.diff(j))))
        reward = config.purity_weight * pur + config.monotonicity_weight * mono
        peak[b, :n_text], purity[b, :n_text] = j, pur
        monotonicity[b, :n_text], token_reward[b, :n_text] = mono, reward
        k = int(n_words[b])
        if k == 0:
            continue
        ids = word_index[b, :n_text]
        in_word = ids >= 0
        count = np.bincount(ids[in_word], minlength=k)
        word_reward[b, :k] = np.bincount(ids[in_word], reward[in_word], minlength=k) / count
        word_peak = np.bincount(ids[in_word], j[in_word].astype(np.float64), minlength=k) / count
        rate = config.speech_token_rate / config.asr_frame_rate
        word_span[b, :k] = _word_spans(word_peak, int(speech_lengths[b]), rate)
    return AttentionMetrics(
        peak=peak,
        purity=purity,
        monotonicity=monotonicity,
        token_reward=token_reward,
        word_reward=word_reward,
        word_span=word_span,
        n_words=n_words,
    )
