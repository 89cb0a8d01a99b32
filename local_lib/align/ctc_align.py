"""CTC forced alignment: the best (Viterbi) CTC path of a known label sequence, with timestamps.

States are the labels with blanks around and between them (``2L + 1``). A state may stay, advance
by one, or skip the blank between two *different* labels. Ties prefer the smaller move (stay, then
advance, then skip); at the last frame the last label wins over the trailing blank on a tie. A
label sequence of ``L`` tokens with ``R`` immediate repeats needs ``L + R`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from local_lib.align._inputs import check_values, count_words, float_array, lengths_array
from local_lib.align._parallel import kernel_threads


@dataclass(frozen=True)
class CTCAlignment:
    """Per item: token frame ranges [start, end), the token of every frame (-1: blank), score."""

    token_start: np.ndarray  # int64 [B, L]; -1 on padding
    token_end: np.ndarray  # int64 [B, L]; exclusive; -1 on padding
    frame_token: np.ndarray  # int64 [B, T]; -1 on blank frames and padding
    score: np.ndarray  # float64 [B]: log-probability of the path


@njit(cache=True, nogil=True)
def _align_item(
    log_probs: np.ndarray,
    labels: np.ndarray,
    blank: int,
    token_start: np.ndarray,
    token_end: np.ndarray,
    frame_token: np.ndarray,
) -> float:
    """Viterbi alignment of one item; returns the path score (-inf when no path is finite)."""
    n_frames, n_labels = log_probs.shape[0], labels.shape[0]
    n_states = 2 * n_labels + 1
    state_label = np.full(n_states, blank, np.int64)
    can_skip = np.zeros(n_states, np.bool_)
    for k in range(n_labels):
        state_label[2 * k + 1] = labels[k]
        can_skip[2 * k + 1] = k > 0 and labels[k] != labels[k - 1]
    prev = np.full(n_states, -np.inf)
    cur = np.full(n_states, -np.inf)
    back = np.zeros((n_frames, n_states), np.uint8)
    prev[0] = log_probs[0, blank]
    prev[1] = log_probs[0, state_label[1]]
    for t in range(1, n_frames):
        for s in range(n_states):
            best = prev[s]
            move = 0
            if s >= 1 and prev[s - 1] > best:
                best = prev[s - 1]
                move = 1
            if can_skip[s] and prev[s - 2] > best:
                best = prev[s - 2]
                move = 2
            cur[s] = best + log_probs[t, state_label[s]]
            back[t, s] = move
        prev, cur = cur, prev
    s = n_states - 2 if prev[n_states - 2] >= prev[n_states - 1] else n_states - 1
    score = prev[s]
    if score == -np.inf:
        return score
    for t in range(n_frames - 1, -1, -1):
        if s % 2 == 1:
            k = s // 2
            frame_token[t] = k
            token_start[k] = t
            if token_end[k] < 0:
                token_end[k] = t + 1
        s -= back[t, s]
    return score


@njit(cache=True, parallel=True)
def _align_batch(
    log_probs: np.ndarray,
    frame_lengths: np.ndarray,
    labels: np.ndarray,
    label_lengths: np.ndarray,
    blank: int,
    token_start: np.ndarray,
    token_end: np.ndarray,
    frame_token: np.ndarray,
    score: np.ndarray,
) -> None:
    for b in prange(log_probs.shape[0]):
        score[b] = _align_item(
            log_probs[b, : frame_lengths[b]],
            labels[b, : label_lengths[b]],
            blank,
            token_start[b],
            token_end[b],
            frame_token[b],
        )


def _check_labels(
    labels: np.ndarray, label_lengths: np.ndarray, frame_lengths: np.ndarray, vocab: int, blank: int
) -> None:
    """Labels must be real tokens, and each sequence must fit its number of frames."""
    for b, n in enumerate(label_lengths):
        seq = labels[b, :n]
        wrong = np.flatnonzero((seq < 0) | (seq >= vocab) | (seq == blank))
        if wrong.size:
            k = int(wrong[0])
            raise ValueError(
                f"labels: item {b} position {k} is {seq[k]}: not a token id in [0, {vocab}) "
                f"other than blank {blank}"
            )
        repeats = int(np.count_nonzero(seq[1:] == seq[:-1]))
        if n + repeats > frame_lengths[b]:
            raise ValueError(
                f"labels: item {b} has {n} tokens with {repeats} immediate repeats, which need "
                f"at least {n + repeats} frames; the log-posterior has {frame_lengths[b]}"
            )


def ctc_forced_align(
    log_probs: np.ndarray,
    frame_lengths: np.ndarray,
    labels: np.ndarray,
    label_lengths: np.ndarray,
    blank: int = 0,
    num_threads: int | None = None,
) -> CTCAlignment:
    """Align label sequences ``[B, L]`` to CTC log-posteriors ``[B, T, V]`` (batched Viterbi).

    ``-inf`` log-probabilities are allowed; an item whose every path crosses one is an error.
    ``num_threads`` caps the numba threads (default: numba's setting).
    """
    values = float_array("log_probs", log_probs, 3)
    batch, max_frames, vocab = values.shape
    if not 0 <= blank < vocab:
        raise ValueError(f"blank id {blank} is outside the vocabulary [0, {vocab})")
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[0] != batch or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels: expected integer [B={batch}, L], got {labels.dtype} {labels.shape}"
        )
    n_frames = lengths_array("frame_lengths", frame_lengths, batch, max_frames)
    n_labels = lengths_array("label_lengths", label_lengths, batch, labels.shape[1])
    _check_labels(labels, n_labels, n_frames, vocab, blank)
    for b in range(batch):
        check_values("log_probs", values[b, : n_frames[b]], b, True)
    token_start = np.full(labels.shape, -1, np.int64)
    token_end = np.full(labels.shape, -1, np.int64)
    frame_token = np.full((batch, max_frames), -1, np.int64)
    score = np.empty(batch)
    with kernel_threads(num_threads):
        _align_batch(
            values,
            n_frames,
            np.ascontiguousarray(labels, dtype=np.int64),
            n_labels,
            blank,
            token_start,
            token_end,
            frame_token,
            score,
        )
    impossible = np.flatnonzero(score == -np.inf)
    if impossible.size:
        raise ValueError(
            f"log_probs: item {int(impossible[0])} has no alignment of finite probability "
            "(every path crosses a -inf log-probability)"
        )
    return CTCAlignment(token_start, token_end, frame_token, score)


def word_timestamps(
    token_start: np.ndarray, token_end: np.ndarray, token_to_word: np.ndarray, frame_shift: float
) -> np.ndarray:
    """[W, 2] start/end seconds per word of one item: its tokens' first start and last end.

    ``token_to_word`` gives each token's word (0, 1, 2, ... in order; -1 for tokens in no word,
    e.g. punctuation); ``frame_shift`` is the seconds between CTC frames.
    """
    start, end = np.asarray(token_start), np.asarray(token_end)
    words = np.asarray(token_to_word)
    if not start.shape == end.shape == words.shape or start.ndim != 1:
        raise ValueError(
            f"token_start {start.shape}, token_end {end.shape} and token_to_word {words.shape} "
            "must be the same 1-D shape"
        )
    n_words = int(count_words(words[None], [len(words)])[0])
    in_word = words >= 0
    first = np.full(n_words, np.iinfo(np.int64).max)
    last = np.zeros(n_words, np.int64)
    np.minimum.at(first, words[in_word], start[in_word])
    np.maximum.at(last, words[in_word], end[in_word])
    return np.stack([first, last], axis=1) * float(frame_shift)
