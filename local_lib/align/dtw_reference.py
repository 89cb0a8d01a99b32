"""Plain NumPy DTW: the specification :mod:`local_lib.align.dtw` is tested against."""

from __future__ import annotations

import numpy as np


def dtw_reference(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Same contract and tie rule as :func:`local_lib.align.dtw.dtw`, on the full cost matrix."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim == 1:
        x, y = x[:, None], y[:, None]
    cost = np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(axis=-1))
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            total[i, j] = cost[i - 1, j - 1] + min(
                total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]
            )
    path = [(n - 1, m - 1)]
    i, j = n, m
    while (i, j) != (1, 1):
        candidates = [(total[i - 1, j - 1], i - 1, j - 1), (total[i - 1, j], i - 1, j)]
        candidates.append((total[i, j - 1], i, j - 1))
        best = min(c[0] for c in candidates)
        _, i, j = next(c for c in candidates if c[0] == best)
        path.append((i - 1, j - 1))
    return float(total[n, m]), np.array(path[::-1], dtype=np.int64)
