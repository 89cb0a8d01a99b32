"""CTC forced alignment against the NumPy reference, word timestamps, invariants and errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local_lib.align.ctc_align import ctc_forced_align, word_timestamps
from local_lib.align.ctc_align_reference import ctc_forced_align_reference


def _posteriors(rng, n_frames, vocab, rounded=False):
    log_probs = np.log(rng.dirichlet(np.ones(vocab), n_frames))
    return np.round(log_probs) if rounded else log_probs  # rounding makes ties


def _assert_same(log_probs, labels, blank=0):
    lengths = ([len(log_probs)], [len(labels)])
    result = ctc_forced_align(log_probs[None], lengths[0], labels[None], lengths[1], blank)
    start, end, frame_token, score = ctc_forced_align_reference(log_probs, labels, blank)
    np.testing.assert_array_equal(result.token_start[0], start)
    np.testing.assert_array_equal(result.token_end[0], end)
    np.testing.assert_array_equal(result.frame_token[0], frame_token)
    assert result.score[0] == score
    return result


@pytest.mark.parametrize("rounded", [False, True], ids=["random", "ties"])
def test_random_items_equal_reference(rounded):
    rng = np.random.default_rng(int(rounded))
    for n_frames, n_labels in [(1, 1), (5, 5), (40, 1), (40, 12), (60, 30)]:
        labels = rng.integers(1, 6, n_labels)
        labels[1:][labels[1:] == labels[:-1]] = 6  # no repeats, so every length here fits
        _assert_same(_posteriors(rng, n_frames, 7, rounded), labels)


def test_repeats_need_a_blank_between_them():
    log_probs = np.log(np.full((3, 3), 1 / 3))
    result = _assert_same(log_probs, np.array([1, 1]))
    assert result.frame_token[0].tolist() == [0, -1, 1]
    with pytest.raises(ValueError, match="2 tokens with 1 immediate repeats, which need at least"):
        ctc_forced_align(log_probs[None, :2], [2], np.array([[1, 1]]), [2])


def test_known_alignment_and_neg_inf_entries():
    # frames favour: blank, a, a, blank, b, -> a = frames 1-2, b = frame 4
    probs = np.full((5, 3), 0.05)
    for t, k in enumerate([0, 1, 1, 0, 2]):
        probs[t, k] = 0.9
    log_probs = np.log(probs)
    log_probs[4, 0] = -np.inf
    result = _assert_same(log_probs, np.array([1, 2]))
    assert result.token_start[0].tolist() == [1, 4] and result.token_end[0].tolist() == [3, 5]
    log_probs[:, 2] = -np.inf
    with pytest.raises(ValueError, match="item 0 has no alignment of finite probability"):
        ctc_forced_align(log_probs[None], [5], np.array([[1, 2]]), [2])


def test_batch_with_padding_and_blank_argument():
    rng = np.random.default_rng(3)
    log_probs = np.stack([_posteriors(rng, 30, 5) for _ in range(3)]).astype(np.float32)
    log_probs[1, 20:] = np.nan  # padding may hold anything
    labels = np.array([[0, 1, 2, 3], [2, 1, 0, 0], [3, 3, 3, 3]])
    n_frames, n_labels = [30, 20, 30], [4, 2, 4]
    result = ctc_forced_align(log_probs, n_frames, labels, n_labels, blank=4)
    for b in range(3):
        start, end, frame_token, score = ctc_forced_align_reference(
            log_probs[b, : n_frames[b]], labels[b, : n_labels[b]], blank=4
        )
        np.testing.assert_array_equal(result.token_start[b, : n_labels[b]], start)
        np.testing.assert_array_equal(result.token_end[b, : n_labels[b]], end)
        np.testing.assert_array_equal(result.frame_token[b, : n_frames[b]], frame_token)
        assert result.score[b] == score
    assert (result.token_start[1, 2:] == -1).all() and (result.frame_token[1, 20:] == -1).all()


def test_word_timestamps():
    start, end = np.array([1, 3, 6, 9]), np.array([2, 5, 7, 12])
    times = word_timestamps(start, end, np.array([0, 0, -1, 1]), frame_shift=0.02)
    np.testing.assert_allclose(times, [[0.02, 0.10], [0.18, 0.24]])
    with pytest.raises(ValueError, match="token 1 has word 2 after word 0"):
        word_timestamps(start[:2], end[:2], np.array([0, 2]), 0.02)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(0, 12), st.integers(0, 2**32 - 1), st.booleans())
def test_alignment_invariants(n_labels, extra_frames, seed, rounded):
    rng = np.random.default_rng(seed)
    labels = rng.integers(1, 4, n_labels)
    n_frames = n_labels + int(np.count_nonzero(labels[1:] == labels[:-1])) + extra_frames
    log_probs = _posteriors(rng, n_frames, 4, rounded)
    result = _assert_same(log_probs, labels)
    start, end, frame_token = result.token_start[0], result.token_end[0], result.frame_token[0]
    assert (start < end).all() and (end[:-1] <= start[1:]).all()
    for k in range(n_labels):
        assert (frame_token[start[k] : end[k]] == k).all()
    assert np.count_nonzero(frame_token >= 0) == (end - start).sum()
    states = np.where(frame_token >= 0, labels[np.maximum(frame_token, 0)], 0)
    np.testing.assert_allclose(result.score[0], log_probs[np.arange(n_frames), states].sum())


def test_bad_labels_raise_naming_the_item():
    log_probs = np.log(np.full((1, 6, 3), 1 / 3))
    with pytest.raises(ValueError, match="item 0 position 1 is 0: not a token id"):
        ctc_forced_align(log_probs, [6], np.array([[1, 0]]), [2])
    with pytest.raises(ValueError, match="blank id 5 is outside"):
        ctc_forced_align(log_probs, [6], np.array([[1, 2]]), [2], blank=5)
