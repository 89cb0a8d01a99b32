"""Dynamic time warping of contours (F0, energy, mel frames) between generated and reference speech.

Frame cost is the euclidean distance; ``D[i, j] = cost(i, j) + min(D[i-1, j-1], D[i-1, j],
D[i, j-1])`` from ``(0, 0)`` to ``(N-1, M-1)``; the distance is ``D[N-1, M-1]``, the sum of the
costs along the path. Ties prefer the diagonal, then the step from ``i-1``, then from ``j-1``.
Batched over pairs in parallel; one direction byte per cell and two score rows per pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from local_lib.align._inputs import check_values, lengths_array
from local_lib.align._parallel import kernel_threads

_DIAGONAL, _FROM_X, _FROM_Y = 0, 1, 2


@dataclass(frozen=True)
class DTWResult:
    """Per pair: total cost and the warping path as (i, j) rows, padded with -1."""

    distance: np.ndarray  # float64 [B]
    path: np.ndarray  # int64 [B, N + M - 1, 2]
    path_length: np.ndarray  # int64 [B]


@njit(cache=True, nogil=True)
def _dtw_pair(x: np.ndarray, y: np.ndarray, path: np.ndarray) -> tuple[float, int]:
    """Distance and path length of one pair; the path is written reversed then flipped."""
    n, m = x.shape[0], y.shape[0]
    dims = x.shape[1]
    step = np.empty((n, m), np.uint8)
    prev = np.empty(m)
    cur = np.empty(m)
    for i in range(n):
        for j in range(m):
            cost = 0.0
            for d in range(dims):
                diff = float(x[i, d]) - float(y[j, d])
                cost += diff * diff
            cost = np.sqrt(cost)
            if i == 0 and j == 0:
                best, move = 0.0, _DIAGONAL
            elif i == 0:
                best, move = cur[j - 1], _FROM_Y
            elif j == 0:
                best, move = prev[j], _FROM_X
            else:
                best, move = prev[j - 1], _DIAGONAL
                if prev[j] < best:
                    best, move = prev[j], _FROM_X
                if cur[j - 1] < best:
                    best, move = cur[j - 1], _FROM_Y
            cur[j] = best + cost
            step[i, j] = move
        prev, cur = cur, prev
    distance = prev[m - 1]
    i, j, k = n - 1, m - 1, 0
    while True:
        path[k, 0] = i
        path[k, 1] = j
        k += 1
        if i == 0 and j == 0:
            break
        move = step[i, j]
        if move != _FROM_Y:
            i -= 1
        if move != _FROM_X:
            j -= 1
    path[:k] = path[:k][::-1].copy()
    return distance, k


@njit(cache=True, parallel=True)
def _dtw_batch(
    x: np.ndarray,
    x_lengths: np.ndarray,
    y: np.ndarray,
    y_lengths: np.ndarray,
    distance: np.ndarray,
    path: np.ndarray,
    path_length: np.ndarray,
) -> None:
    for b in prange(x.shape[0]):
        distance[b], path_length[b] = _dtw_pair(
            x[b, : x_lengths[b]], y[b, : y_lengths[b]], path[b]
        )


def _as_frames(name: str, array: np.ndarray) -> np.ndarray:
    """[B, T] contours become [B, T, 1] so one kernel serves 1-D and multi-dim sequences."""
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{name}: expected a float array, got {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"{name}: expected [B, T] or [B, T, D], got shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float64)


def dtw_batch(
    x: np.ndarray,
    x_lengths: np.ndarray,
    y: np.ndarray,
    y_lengths: np.ndarray,
    num_threads: int | None = None,
) -> DTWResult:
    """DTW of each pair ``x[b, :x_lengths[b]]`` vs ``y[b, :y_lengths[b]]`` ([B, T] or [B, T, D]).

    ``num_threads`` caps the numba threads (default: numba's setting).
    """
    xs, ys = _as_frames("x", x), _as_frames("y", y)
    if xs.shape[0] != ys.shape[0] or xs.shape[2] != ys.shape[2]:
        raise ValueError(f"x {xs.shape} and y {ys.shape} differ in batch size or feature size")
    batch = xs.shape[0]
    nx = lengths_array("x_lengths", x_lengths, batch, xs.shape[1])
    ny = lengths_array("y_lengths", y_lengths, batch, ys.shape[1])
    for b in range(batch):
        check_values("x", xs[b, : nx[b]], b, False)
        check_values("y", ys[b, : ny[b]], b, False)
    distance = np.empty(batch)
    path = np.full((batch, xs.shape[1] + ys.shape[1] - 1, 2), -1, np.int64)
    path_length = np.empty(batch, np.int64)
    with kernel_threads(num_threads):
        _dtw_batch(xs, nx, ys, ny, distance, path, path_length)
    return DTWResult(distance=distance, path=path, path_length=path_length)


def dtw(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """DTW of one pair ([N] or [N, D] vs [M] or [M, D]): (distance, path [L, 2])."""
    x, y = np.asarray(x), np.asarray(y)
    result = dtw_batch(x[None], [len(x)], y[None], [len(y)], num_threads=1)
    return float(result.distance[0]), result.path[0, : result.path_length[0]]
