"""Input checks shared by the alignment kernels.

The numba kernels trust their inputs (no bounds checks in the hot loops), so every public entry
point normalises arrays and lengths here first and fails with a message naming the batch item.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_array(name: str, array: np.ndarray, ndim: int) -> np.ndarray:
    """Return a C-contiguous float32/float64 view (a copy only when the layout requires one)."""
    array = np.asarray(array)
    if array.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32 or float64, got {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {array.shape}")
    return np.ascontiguousarray(array)


def lengths_array(
    name: str, lengths: np.ndarray, batch: int, max_len: int, min_len: int = 1
) -> np.ndarray:
    """Validate per-item lengths against the padded size; int64 result for the kernels."""
    raw = np.asarray(lengths)
    if raw.shape != (batch,):
        raise ValueError(f"{name}: expected shape ({batch},), got {raw.shape}")
    if raw.size and not np.issubdtype(raw.dtype, np.integer):
        if not np.array_equal(raw, np.round(raw)):
            raise ValueError(f"{name}: lengths must be whole numbers, got {raw}")
    out = raw.astype(np.int64)
    bad = np.flatnonzero((out < min_len) | (out > max_len))
    if bad.size:
        item = int(bad[0])
        raise ValueError(
            f"{name}[{item}] = {out[item]} is outside [{min_len}, {max_len}] (padded size)"
        )
    return out


def check_values(name: str, array: np.ndarray, item: int, allow_neg_inf: bool) -> None:
    """Raise naming the first bad cell: NaN and +inf never mean anything here; -inf may."""
    bad = np.isnan(array) | np.isposinf(array)
    if not allow_neg_inf:
        bad |= np.isneginf(array)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        allowed = "NaN or +inf" if allow_neg_inf else "NaN or inf"
        raise ValueError(f"{name}: item {item} has {allowed} at {where}")


def count_words(word_index: np.ndarray, text_lengths: np.ndarray) -> np.ndarray:
    """Words per item, after checking the ids run 0, 1, 2, ... in token order (-1 = no word)."""
    word_index = np.asarray(word_index)
    if word_index.ndim != 2 or word_index.shape[0] != len(text_lengths):
        raise ValueError(f"word_index: expected [B, T_text], got shape {word_index.shape}")
    if word_index.size and not np.issubdtype(word_index.dtype, np.integer):
        raise TypeError(f"word_index: expected integers, got {word_index.dtype}")
    n_words = np.zeros(len(text_lengths), np.int64)
    for b, n_text in enumerate(text_lengths):
        ids = word_index[b, :n_text]
        if (ids < -1).any():
            t = int(np.argmax(ids < -1))
            raise ValueError(f"word_index: item {b} token {t} has id {ids[t]} (< -1)")
        tokens = np.flatnonzero(ids >= 0)
        words = ids[tokens]
        step = np.diff(words, prepend=-1)  # so the first word must be 0
        wrong = np.flatnonzero((step < 0) | (step > 1))
        if wrong.size:
            i = int(wrong[0])
            after = f"after word {words[i - 1]}" if i else "first"
            raise ValueError(
                f"word_index: item {b} token {tokens[i]} has word {words[i]} {after}; "
                "word ids must run 0, 1, 2, ... in token order"
            )
        n_words[b] = words[-1] + 1 if words.size else 0
    return n_words
