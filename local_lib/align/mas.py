"""Monotonic alignment search (Glow-TTS / Grad-TTS), batched and compiled with numba.

Why it is fast: the dynamic programme runs over tokens for one frame at a time, which is a
data-parallel step (each token looks only at the previous frame), so the inner loop is SIMD. The
input is ``[B, T_text, T_frames]`` (frames contiguous), so frames are copied in small tiles into a
token-contiguous scratch buffer first. Only the valid band is visited (token ``t`` can only hold
frames ``t .. T_f - (T_t - t)``), the scores live in two rows per item, and the backtrack reads a
one-byte direction per cell. Items run in parallel, largest first, one at a time per thread.

Tie rule (the same as ESPnet's and glow-tts's, so paths are identical even with ties): when a cell
can be reached equally well from the same token or from the previous token, it stays with the same
token; while backtracking this means earlier tokens end as early as possible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from local_lib.align._inputs import check_values, float_array, lengths_array
from local_lib.align._parallel import kernel_threads

_TILE_FRAMES = 64


@dataclass(frozen=True)
class MASResult:
    """Hard alignment of every item; padding is False / 0."""

    path: np.ndarray  # bool [B, T_text, T_frames]: path[b, t, j] is True if frame j is token t's
    durations: np.ndarray  # int64 [B, T_text]: frames per token
    score: np.ndarray  # [B] best total log-likelihood (-inf where every path crosses -inf)


@njit(cache=True, nogil=True)
def _load_tile(
    log_likelihood: np.ndarray, tile: np.ndarray, x_lo: int, x_hi: int, y0: int, y1: int
) -> None:
    """Copy frames y0..y1 of tokens x_lo..x_hi into a token-contiguous tile."""
    n = y1 - y0
    for x in range(x_lo, x_hi):
        src = log_likelihood[x, y0:y1]
        dst = tile[:n, x]
        for k in range(n):
            dst[k] = src[k]


@njit(cache=True, nogil=True)
def _search_item(
    log_likelihood: np.ndarray,
    n_text: int,
    n_frames: int,
    path: np.ndarray,
    durations: np.ndarray,
    score: np.ndarray,
    item: int,
) -> bool:
    """Fill path/durations/score for one item; False if its band holds NaN or +inf."""
    dtype = log_likelihood.dtype
    # Token t lives at index t + 1 of a score row; index 0 is the start state, open at frame 0.
    scores = np.full((2, n_text + 1), -np.inf, dtype)
    scores[0, 0] = 0.0
    moved = np.empty((n_frames, n_text), np.bool_)
    tile = np.empty((_TILE_FRAMES, n_text), dtype)
    bad = False
    slack = n_frames - n_text
    for y0 in range(0, n_frames, _TILE_FRAMES):
        y1 = min(n_frames, y0 + _TILE_FRAMES)
        _load_tile(log_likelihood, tile, max(0, y0 - slack), min(n_text, y1), y0, y1)
        for y in range(y0, y1):
            lo = max(0, y - slack)
            hi = min(n_text, y + 1)
            # Slices keep every index provably non-negative, which lets LLVM vectorise this.
            prev = scores[y & 1]
            from_previous_token = prev[lo:hi]
            from_same_token = prev[lo + 1 : hi + 1]
            out = scores[(y + 1) & 1, lo + 1 : hi + 1]
            emit = tile[y - y0, lo:hi]
            step = moved[y, lo:hi]
            for i in range(hi - lo):
                same = from_same_token[i]
                other = from_previous_token[i]
                value = emit[i]
                move = same < other
                out[i] = (other if move else same) + value
                step[i] = move
                bad |= not value < np.inf
            if y == 0:
                scores[0, 0] = -np.inf
    score[item] = scores[n_frames & 1, n_text]
    token = n_text - 1
    for y in range(n_frames - 1, -1, -1):
        path[token, y] = True
        durations[token] += 1
        if token != 0 and (token == y or moved[y, token]):
            token -= 1
    return not bad


@njit(cache=True, parallel=True)
def _search_batch(
    log_likelihood: np.ndarray,
    text_lengths: np.ndarray,
    frame_lengths: np.ndarray,
    order: np.ndarray,
    path: np.ndarray,
    durations: np.ndarray,
    score: np.ndarray,
    ok: np.ndarray,
) -> None:
    for i in prange(order.shape[0]):
        b = order[i]
        ok[b] = _search_item(
            log_likelihood[b], text_lengths[b], frame_lengths[b], path[b], durations[b], score, b
        )


def monotonic_alignment_search(
    log_likelihood: np.ndarray,
    text_lengths: np.ndarray,
    frame_lengths: np.ndarray,
    num_threads: int | None = None,
) -> MASResult:
    """Most likely monotonic hard alignment of text tokens to frames, per batch item.

    ``log_likelihood`` is ``[B, T_text, T_frames]`` float32/float64 (never modified; the DP runs in
    the input's dtype, as ESPnet's does for float32). Each item needs
    ``text_length <= frame_length``. ``-inf`` marks impossible cells; NaN and +inf where a path
    could pass are errors. ``num_threads`` caps the numba threads (default: numba's setting).
    """
    values = float_array("log_likelihood", log_likelihood, 3)
    batch, max_text, max_frames = values.shape
    n_text = lengths_array("text_lengths", text_lengths, batch, max_text)
    n_frames = lengths_array("frame_lengths", frame_lengths, batch, max_frames)
    too_short = np.flatnonzero(n_frames < n_text)
    if too_short.size:
        b = int(too_short[0])
        raise ValueError(
            f"item {b}: {n_text[b]} tokens cannot each get a frame of only {n_frames[b]} frames"
        )
    order = np.argsort(-(n_text * (n_frames - n_text + 1)), kind="stable")
    path = np.zeros((batch, max_text, max_frames), np.bool_)
    durations = np.zeros((batch, max_text), np.int64)
    score = np.empty(batch, values.dtype)
    ok = np.ones(batch, np.bool_)
    with kernel_threads(num_threads):
        _search_batch(values, n_text, n_frames, order, path, durations, score, ok)
    for b in np.flatnonzero(~ok):
        check_values("log_likelihood", values[b, : n_text[b], : n_frames[b]], int(b), True)
    return MASResult(path=path, durations=durations, score=score)
