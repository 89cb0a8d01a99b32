"""Plain NumPy CTC forced alignment: the specification :mod:`ctc_align` is tested against."""

from __future__ import annotations

import numpy as np


def ctc_forced_align_reference(
    log_probs: np.ndarray, labels: np.ndarray, blank: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """One item ``[T, V]`` and ``[L]``: (token_start, token_end, frame_token, score).

    Same transitions and tie rule as the kernel, vectorised over states with NumPy.
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    n_frames, n_labels = log_probs.shape[0], labels.shape[0]
    states = np.full(2 * n_labels + 1, blank, dtype=np.int64)
    states[1::2] = labels
    skip_ok = np.zeros(states.shape, dtype=bool)
    skip_ok[3::2] = labels[1:] != labels[:-1]
    score = np.full(states.shape, -np.inf)
    score[:2] = log_probs[0, states[:2]]
    moves = np.zeros((n_frames, states.size), dtype=np.int64)
    for t in range(1, n_frames):
        stay = score
        advance = np.concatenate(([-np.inf], score[:-1]))
        skip = np.where(skip_ok, np.concatenate(([-np.inf, -np.inf], score[:-2])), -np.inf)
        candidates = np.stack([stay, advance, skip])
        move = np.zeros(states.size, dtype=np.int64)
        best = stay.copy()
        for k in (1, 2):  # strictly better only: ties keep the smaller move
            better = candidates[k] > best
            move[better], best[better] = k, candidates[k][better]
        moves[t] = move
        score = best + log_probs[t, states]
    s = states.size - 2 if score[-2] >= score[-1] else states.size - 1
    total = float(score[s])
    frame_state = np.empty(n_frames, dtype=np.int64)
    for t in range(n_frames - 1, -1, -1):
        frame_state[t] = s
        s -= moves[t, s]
    frame_token = np.where(frame_state % 2 == 1, frame_state // 2, -1)
    tokens = np.arange(n_labels)
    hits = frame_token[None, :] == tokens[:, None]
    token_start = np.argmax(hits, axis=1)
    token_end = n_frames - np.argmax(hits[:, ::-1], axis=1)
    return token_start, token_end, frame_token, total
