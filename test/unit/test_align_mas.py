"""MAS kernel against its NumPy reference, ESPnet's and glow-tts's implementations, invariants."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from local_lib.align.mas import monotonic_alignment_search
from local_lib.align.mas_reference import monotonic_alignment_search_reference


def _batch(rng, lengths, dtype=np.float32, integer=False):
    text = np.array([t for t, _ in lengths])
    frames = np.array([f for _, f in lengths])
    shape = (len(lengths), text.max(), frames.max())
    values = rng.integers(-3, 1, shape) if integer else rng.standard_normal(shape)
    return values.astype(dtype), text, frames


def _assert_same(result, reference):
    np.testing.assert_array_equal(result.path, reference.path)
    np.testing.assert_array_equal(result.durations, reference.durations)
    np.testing.assert_array_equal(result.score, reference.score)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_batch_equals_reference(dtype):
    rng = np.random.default_rng(0)
    lengths = [(int(t), int(t + rng.integers(0, 60))) for t in rng.integers(1, 30, 8)]
    values, text, frames = _batch(rng, lengths, dtype)
    result = monotonic_alignment_search(values, text, frames)
    assert result.score.dtype == dtype
    _assert_same(result, monotonic_alignment_search_reference(values, text, frames))


@pytest.mark.parametrize(
    "lengths",
    [[(1, 1)], [(1, 17)], [(9, 9)], [(5, 5), (1, 40), (12, 13)]],
    ids=["1x1", "one-token", "tokens-equal-frames", "mixed-padding"],
)
def test_edge_shapes_equal_reference(lengths):
    values, text, frames = _batch(np.random.default_rng(1), lengths)
    result = monotonic_alignment_search(values, text, frames)
    _assert_same(result, monotonic_alignment_search_reference(values, text, frames))
    for b, (n_text, n_frames) in enumerate(lengths):
        if n_text == n_frames:
            np.testing.assert_array_equal(result.durations[b, :n_text], np.ones(n_text))
        if n_text == 1:
            assert result.durations[b, 0] == n_frames


def test_ties_follow_the_documented_rule():
    # All-equal scores: every path ties; frames stay with the later token, so earlier tokens
    # take one frame each and the last token takes the rest.
    values = np.zeros((1, 3, 7), np.float32)
    result = monotonic_alignment_search(values, [3], [7])
    np.testing.assert_array_equal(result.durations[0], [1, 1, 5])
    values, text, frames = _batch(np.random.default_rng(2), [(6, 20), (10, 31)], integer=True)
    _assert_same(
        monotonic_alignment_search(values, text, frames),
        monotonic_alignment_search_reference(values, text, frames),
    )


def test_neg_inf_cells_are_avoided_and_all_neg_inf_is_still_a_valid_path():
    rng = np.random.default_rng(3)
    values, text, frames = _batch(rng, [(8, 30), (4, 12)])
    values[rng.random(values.shape) < 0.2] = -np.inf
    _assert_same(
        monotonic_alignment_search(values, text, frames),
        monotonic_alignment_search_reference(values, text, frames),
    )
    forced = np.zeros((1, 2, 4), np.float32)
    forced[0, 0, 1:] = -np.inf  # token 0 can only have frame 0
    assert monotonic_alignment_search(forced, [2], [4]).durations[0].tolist() == [1, 3]
    hopeless = np.full((1, 3, 5), -np.inf, np.float32)
    result = monotonic_alignment_search(hopeless, [3], [5])
    assert result.score[0] == -np.inf
    assert result.durations[0].tolist() == [1, 1, 3]


def test_input_is_not_mutated_and_padding_is_ignored():
    values, text, frames = _batch(np.random.default_rng(4), [(5, 9), (3, 4)])
    values[1, 3:, :] = np.nan  # padding may hold anything
    values[1, :, 4:] = np.nan
    before = values.copy()
    result = monotonic_alignment_search(values, text, frames)
    np.testing.assert_array_equal(values, before)
    assert not result.path[1, 3:].any() and not result.path[1, :, 4:].any()
    assert (result.durations[1, 3:] == 0).all()


def _espnet_paths(values, text, frames):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from espnet2.gan_tts.vits.monotonic_align import maximum_path
    neg_x_ent = torch.from_numpy(np.ascontiguousarray(values.transpose(0, 2, 1)))
    mask = torch.zeros(neg_x_ent.shape)
    for b, (n_text, n_frames) in enumerate(zip(text, frames)):
        mask[b, :n_frames, :n_text] = 1
    return maximum_path(neg_x_ent, mask).numpy().transpose(0, 2, 1).astype(bool)


@pytest.mark.parametrize("kind", ["continuous", "ties", "neg-inf"])
def test_paths_equal_espnet_and_glow_tts(kind):
    from monotonic_alignment_search.core import maximum_path_c

    rng = np.random.default_rng(5)
    lengths = [(int(t), int(t + rng.integers(0, 80))) for t in rng.integers(1, 40, 6)]
    values, text, frames = _batch(rng, lengths, integer=kind == "ties")
    if kind == "neg-inf":
        values[rng.random(values.shape) < 0.05] = -np.inf
    ours = monotonic_alignment_search(values, text, frames).path
    np.testing.assert_array_equal(ours, _espnet_paths(values, text, frames))
    if kind != "neg-inf":  # glow-tts uses -1e9 instead of -inf for its borders
        glow = np.zeros(values.shape, np.int32)
        maximum_path_c(glow, values.copy(), text.astype(np.int32), frames.astype(np.int32))
        np.testing.assert_array_equal(ours, glow.astype(bool))


@st.composite
def _mas_inputs(draw):
    batch = draw(st.integers(1, 3))
    lengths = []
    for _ in range(batch):
        n_text = draw(st.integers(1, 8))
        lengths.append((n_text, draw(st.integers(n_text, n_text + 10))))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values, text, frames = _batch(rng, lengths, integer=draw(st.booleans()))
    values[rng.random(values.shape) < draw(st.sampled_from([0.0, 0.1, 0.5]))] = -np.inf
    return values, text, frames


@settings(max_examples=60, deadline=None)
@given(_mas_inputs())
def test_path_invariants(inputs):
    values, text, frames = inputs
    result = monotonic_alignment_search(values, text, frames)
    _assert_same(result, monotonic_alignment_search_reference(values, text, frames))
    for b in range(len(text)):
        path = result.path[b, : text[b], : frames[b]]
        assert not result.path[b].sum() - path.sum()  # nothing in the padding
        np.testing.assert_array_equal(path.sum(axis=0), 1)  # each frame: exactly one token
        np.testing.assert_array_equal(path.sum(axis=1), result.durations[b, : text[b]])
        assert (result.durations[b, : text[b]] >= 1).all()  # each token: at least one frame
        owner = path.argmax(axis=0)
        assert owner[0] == 0 and owner[-1] == text[b] - 1
        assert set(np.diff(owner).tolist()) <= {0, 1}  # monotone, no token skipped
        assert np.isclose(result.score[b], values[b, : text[b], : frames[b]][path].sum())


def test_bad_inputs_raise_naming_the_item():
    values = np.zeros((2, 4, 6), np.float32)
    with pytest.raises(ValueError, match="item 1: 4 tokens"):
        monotonic_alignment_search(values, [2, 4], [6, 3])
    with pytest.raises(ValueError, match=r"text_lengths\[0\] = 5"):
        monotonic_alignment_search(values, [5, 4], [6, 6])
    with pytest.raises(TypeError, match="float32 or float64"):
        monotonic_alignment_search(values.astype(np.int32), [2, 2], [6, 6])
    values[1, 1, 2] = np.nan
    with pytest.raises(ValueError, match=r"item 1 has NaN or \+inf at \(1, 2\)"):
        monotonic_alignment_search(values, [2, 4], [6, 6])


def test_compiled_kernels_come_from_the_cache_in_a_new_process():
    values, text, frames = _batch(np.random.default_rng(6), [(3, 5)])
    monotonic_alignment_search(values, text, frames)  # make sure the cache is written
    code = (
        "import numpy as np\n"
        "from local_lib.align import mas\n"
        "mas.monotonic_alignment_search(np.zeros((1, 3, 5), np.float32), [3], [5])\n"
        "print(sum(mas._search_batch.stats.cache_hits.values()),"
        " sum(mas._search_batch.stats.cache_misses.values()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    hits, misses = map(int, out.stdout.split())
    assert hits == 1 and misses == 0


def test_thread_cap_gives_the_same_result_and_restores_numba_threads():
    import numba

    values, text, frames = _batch(np.random.default_rng(7), [(4, 9), (6, 30), (2, 2)])
    before = numba.get_num_threads()
    capped = monotonic_alignment_search(values, text, frames, num_threads=1)
    assert numba.get_num_threads() == before
    _assert_same(capped, monotonic_alignment_search(values, text, frames))
    with pytest.raises(ValueError, match="num_threads must be >= 1"):
        monotonic_alignment_search(values, text, frames, num_threads=0)
