"""Plain NumPy monotonic alignment search: the readable specification the kernel is tested against.

It keeps the whole value matrix and vectorises over tokens with NumPy, one frame at a time.
Same tie rule as the kernel: on equal predecessors a frame stays with the current token.
"""

from __future__ import annotations

import numpy as np

from local_lib.align.mas import MASResult


def _search_one(values: np.ndarray) -> tuple[np.ndarray, float]:
    """Token index of every frame and the best score for one unpadded [T_text, T_frames] item."""
    n_text, n_frames = values.shape
    dtype = values.dtype.type
    best = np.full((n_text, n_frames), -np.inf, dtype=values.dtype)
    came_from_previous = np.zeros((n_text, n_frames), dtype=bool)
    tokens = np.arange(n_text)
    for j in range(n_frames):
        if j == 0:
            same = np.full(n_text, -np.inf, dtype=values.dtype)
            previous = np.full(n_text, -np.inf, dtype=values.dtype)
            previous[0] = dtype(0.0)
        else:
            same = best[:, j - 1]
            previous = np.concatenate(([dtype(-np.inf)], best[:-1, j - 1]))
        move = same < previous
        reachable = (tokens <= j) & (tokens >= n_text - (n_frames - j))
        step = np.where(move, previous, same) + values[:, j]
        best[:, j] = np.where(reachable, step, dtype(-np.inf))
        came_from_previous[:, j] = move
    owner = np.empty(n_frames, dtype=np.int64)
    token = n_text - 1
    for j in range(n_frames - 1, -1, -1):
        owner[j] = token
        if token > 0 and (token == j or came_from_previous[token, j]):
            token -= 1
    return owner, float(best[n_text - 1, n_frames - 1])


def monotonic_alignment_search_reference(
    log_likelihood: np.ndarray, text_lengths: np.ndarray, frame_lengths: np.ndarray
) -> MASResult:
    """Same contract as :func:`local_lib.align.mas.monotonic_alignment_search`."""
    values = np.asarray(log_likelihood)
    batch, max_text, max_frames = values.shape
    path = np.zeros(values.shape, dtype=bool)
    durations = np.zeros((batch, max_text), dtype=np.int64)
    score = np.empty(batch, dtype=values.dtype)
    for b in range(batch):
        n_text, n_frames = int(text_lengths[b]), int(frame_lengths[b])
        owner, score[b] = _search_one(values[b, :n_text, :n_frames])
        path[b, owner, np.arange(n_frames)] = True
        durations[b, :n_text] = np.bincount(owner, minlength=n_text)
    return MASResult(path=path, durations=durations, score=score)
