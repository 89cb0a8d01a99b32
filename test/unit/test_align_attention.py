"""W3AR attention metrics: kernel against the NumPy reference, hand-computed values, invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local_lib.align.attention_metrics import W3ARConfig, attention_metrics
from local_lib.align.attention_metrics_reference import attention_metrics_reference


def _assert_same(result, reference):
    for name in ("peak", "word_span", "n_words"):
        np.testing.assert_array_equal(getattr(result, name), getattr(reference, name), name)
    for name in ("purity", "monotonicity", "token_reward", "word_reward"):
        np.testing.assert_allclose(getattr(result, name), getattr(reference, name), 1e-12, 1e-12)


def _word_ids(rng, n_text, max_text):
    """Words of 1-4 tokens in order; some tokens (punctuation) belong to no word."""
    ids, word = [], 0
    while len(ids) < n_text:
        ids += [word] * int(rng.integers(1, 5))
        if rng.random() < 0.3:
            ids.append(-1)
        word += 1
    ids = np.array(ids[:n_text])
    return np.concatenate([ids, np.full(max_text - n_text, -1)])


def _batch(rng, lengths, integer=False):
    text = np.array([t for t, _ in lengths])
    frames = np.array([f for _, f in lengths])
    shape = (len(lengths), text.max(), frames.max())
    values = rng.integers(0, 3, shape) if integer else rng.random(shape)
    words = np.stack([_word_ids(rng, t, text.max()) for t in text])
    speech = (frames * rng.uniform(0.3, 1.0, len(lengths))).astype(int) + 1
    return values.astype(np.float32), text, frames, words, speech


@pytest.mark.parametrize("integer", [False, True], ids=["random", "ties"])
@pytest.mark.parametrize("window", [0, 5, 6])
def test_random_batch_equals_reference(integer, window):
    rng = np.random.default_rng(window)
    lengths = [(int(rng.integers(1, 40)), int(rng.integers(1, 120))) for _ in range(6)]
    inputs = _batch(rng, lengths, integer)
    config = W3ARConfig(window=window, asr_frame_rate=50.0, speech_token_rate=21.5)
    _assert_same(attention_metrics(*inputs, config), attention_metrics_reference(*inputs, config))


def test_hand_computed_item():
    attention = np.array(
        [[[0.6, 0.3, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]]], np.float32
    )
    config = W3ARConfig(window=2, beta=0.5, asr_frame_rate=40.0, speech_token_rate=20.0)
    result = attention_metrics(attention, [3], [4], [[0, 1, 1]], [2], config)
    assert result.peak[0].tolist() == [0, 3, 3]
    np.testing.assert_allclose(result.purity[0], [0.9, 0.7, 0.7], rtol=1e-6)
    np.testing.assert_allclose(result.monotonicity[0], [0.0, np.tanh(1.5), 0.0])
    token = 0.5 * result.purity[0] + 0.5 * result.monotonicity[0]
    np.testing.assert_allclose(result.token_reward[0], token)
    np.testing.assert_allclose(result.word_reward[0], [token[0], token[1:].mean()])
    # word peaks 0 and 3 -> boundary at frame 1.5 -> speech token round(0.75) = 1
    assert result.word_span[0].tolist() == [[0, 1], [1, 2]]


def test_edge_cases_one_token_one_frame_ties_and_no_words():
    config = W3ARConfig(window=4, first_monotonicity=0.25)
    one = attention_metrics(np.ones((1, 1, 1), np.float32), [1], [1], [[0]], [3], config)
    assert one.peak[0, 0] == 0 and one.purity[0, 0] == 1.0
    assert one.monotonicity[0, 0] == 0.25 and one.word_span[0].tolist() == [[0, 3]]
    tie = np.array([[[0.5, 0.5, 0.0]]], np.float32)
    assert attention_metrics(tie, [1], [3], [[0]], [1], config).peak[0, 0] == 0
    none = attention_metrics(np.ones((1, 2, 3), np.float32), [2], [3], [[-1, -1]], [4], config)
    assert none.n_words.tolist() == [0] and none.word_reward.shape == (1, 0)


def test_padding_is_ignored():
    rng = np.random.default_rng(7)
    values, text, frames, words, speech = _batch(rng, [(4, 9), (7, 20)])
    values[0, 4:, :] = np.nan
    values[0, :, 9:] = np.nan
    result = attention_metrics(values, text, frames, words, speech)
    assert (result.peak[0, 4:] == -1).all() and (result.token_reward[0, 4:] == 0).all()
    assert (result.peak[0, :4] < 9).all()


@st.composite
def _inputs(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    batch = draw(st.integers(1, 3))
    lengths = [(draw(st.integers(1, 12)), draw(st.integers(1, 30))) for _ in range(batch)]
    return _batch(rng, lengths, draw(st.booleans())), draw(st.integers(0, 8))


@settings(max_examples=60, deadline=None)
@given(_inputs())
def test_invariants(drawn):
    inputs, window = drawn
    values, text, frames, words, speech = inputs
    config = W3ARConfig(window=window)
    result = attention_metrics(*inputs, config)
    _assert_same(result, attention_metrics_reference(*inputs, config))
    for b in range(len(text)):
        rows = values[b, : text[b], : frames[b]]
        assert ((0 <= result.peak[b, : text[b]]) & (result.peak[b, : text[b]] < frames[b])).all()
        assert (result.purity[b, : text[b]] <= rows.sum(axis=1) + 1e-5).all()
        assert (np.abs(result.monotonicity[b]) <= 1).all()
        spans = result.word_span[b, : result.n_words[b]]
        if len(spans):
            assert spans[0, 0] == 0 and spans[-1, 1] == speech[b]
            assert (spans[1:, 0] == spans[:-1, 1]).all() and (spans[:, 1] >= spans[:, 0]).all()


def test_bad_inputs_raise_naming_the_item():
    values = np.full((2, 3, 4), 0.25, np.float32)
    words = np.array([[0, 1, 2], [0, 2, 2]])
    with pytest.raises(ValueError, match="item 1 token 1 has word 2 after word 0"):
        attention_metrics(values, [3, 3], [4, 4], words, [5, 5])
    words[1] = [1, 1, 1]
    with pytest.raises(ValueError, match="item 1 token 0 has word 1 first"):
        attention_metrics(values, [3, 3], [4, 4], words, [5, 5])
    values[0, 2, 3] = -np.inf
    with pytest.raises(ValueError, match=r"attention: item 0 has NaN or inf at \(2, 3\)"):
        attention_metrics(values, [3, 3], [4, 4], [[0, 1, 2], [0, 0, 0]], [5, 5])
    with pytest.raises(ValueError, match="frame rates must be positive"):
        W3ARConfig(asr_frame_rate=0.0)
