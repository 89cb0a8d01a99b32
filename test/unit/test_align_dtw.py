"""DTW kernel against the NumPy reference, plus invariants of the warping path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local_lib.align.dtw import dtw, dtw_batch
from local_lib.align.dtw_reference import dtw_reference


def _assert_same(x, y):
    distance, path = dtw(x, y)
    ref_distance, ref_path = dtw_reference(x, y)
    np.testing.assert_allclose(distance, ref_distance, rtol=1e-12)
    np.testing.assert_array_equal(path, ref_path)
    return distance, path


@pytest.mark.parametrize("dims", [None, 1, 3, 80], ids=["1-D", "D=1", "D=3", "mel"])
def test_random_pairs_equal_reference(dims):
    rng = np.random.default_rng(0)
    for n, m in [(1, 1), (1, 9), (9, 1), (17, 23), (30, 30)]:
        shape_x = (n,) if dims is None else (n, dims)
        shape_y = (m,) if dims is None else (m, dims)
        _assert_same(rng.standard_normal(shape_x), rng.standard_normal(shape_y).astype(np.float32))


def test_ties_and_known_values():
    # Integer contours make many equal-cost paths; the tie rule must match the reference.
    rng = np.random.default_rng(1)
    for _ in range(20):
        _assert_same(rng.integers(0, 3, 12).astype(float), rng.integers(0, 3, 9).astype(float))
    distance, path = _assert_same(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 2.0, 3.0]))
    assert distance == 0.0
    assert path.tolist() == [[0, 0], [1, 1], [1, 2], [2, 3]]
    distance, path = _assert_same(np.zeros((4, 2)), np.zeros((4, 2)))
    assert distance == 0.0 and path.tolist() == [[i, i] for i in range(4)]


def test_batch_with_padding_equals_pairwise():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 20, 2))
    y = rng.standard_normal((3, 15, 2))
    x[:, 18:] = np.nan  # padding may hold anything
    nx, ny = [5, 20 - 2, 1], [15, 7, 3]
    result = dtw_batch(x, nx, y, ny)
    for b in range(3):
        distance, path = dtw_reference(x[b, : nx[b]], y[b, : ny[b]])
        np.testing.assert_allclose(result.distance[b], distance, rtol=1e-12)
        np.testing.assert_array_equal(result.path[b, : result.path_length[b]], path)
        assert (result.path[b, result.path_length[b] :] == -1).all()


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 15),
    st.integers(1, 15),
    st.integers(1, 4),
    st.integers(0, 2**32 - 1),
)
def test_path_invariants(n, m, dims, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, dims)), rng.standard_normal((m, dims))
    distance, path = _assert_same(x, y)
    assert path[0].tolist() == [0, 0] and path[-1].tolist() == [n - 1, m - 1]
    steps = {tuple(s) for s in np.diff(path, axis=0).tolist()}
    assert steps <= {(1, 0), (0, 1), (1, 1)}
    costs = np.linalg.norm(x[path[:, 0]] - y[path[:, 1]], axis=1)
    np.testing.assert_allclose(distance, costs.sum(), rtol=1e-9)
    np.testing.assert_allclose(dtw(y, x)[0], distance, rtol=1e-9)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="x: item 0 has NaN or inf"):
        dtw(np.array([1.0, np.nan]), np.array([1.0]))
    with pytest.raises(TypeError, match="float"):
        dtw(np.array([1, 2]), np.array([1.0]))
    with pytest.raises(ValueError, match="differ in batch size or feature size"):
        dtw(np.zeros((3, 2)), np.zeros((3, 4)))
