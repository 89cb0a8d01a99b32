"""Sentence sets of the mini corpora: deterministic, natural length, disjoint, no unseen words."""

from __future__ import annotations

import random

import pytest

from local_lib.data.mini.esd import N_DEV, N_SENTENCES, N_TEST, esd_sentences
from local_lib.data.mini.libritts import libritts_sentences
from local_lib.data.mini.sentences import (
    MAX_WORDS,
    MIN_WORDS,
    SentenceError,
    make_sentence,
    oov_rate,
    split_sentences,
    words,
)


def test_same_seed_same_sentences_other_seed_other_sentences():
    assert split_sentences(3, 50, {"test": 10}) == split_sentences(3, 50, {"test": 10})
    assert split_sentences(3, 50, {"test": 10}) != split_sentences(4, 50, {"test": 10})


def test_sentences_are_sentences_of_allowed_length():
    rng = random.Random(0)
    for _ in range(300):
        s = make_sentence(rng)
        assert s[0].isupper() and s[-1] in ".?", s
        assert "{" not in s and "  " not in s, s
        assert " a a" not in s and not any(f" a {v}" in s for v in "aeiou"), s
    for split in split_sentences(0, 200, {"dev": 20, "test": 30}).values():
        assert all(MIN_WORDS <= len(words(s)) <= MAX_WORDS for s in split)


def test_hundreds_of_distinct_varied_sentences():
    train = split_sentences(0, 400, {})["train"]
    assert len(set(train)) == 400
    assert len({len(words(s)) for s in train}) >= 6  # lengths vary
    assert len({s.split()[0] for s in train}) >= 15  # openings vary


def test_esd_blocks_are_disjoint_and_test_words_are_known():
    sentences = esd_sentences(0)
    assert len(sentences) == len(set(sentences)) == N_SENTENCES
    dev, test = sentences[:N_DEV], sentences[N_DEV:N_DEV + N_TEST]
    train = sentences[N_DEV + N_TEST:]
    assert not set(train) & (set(dev) | set(test))
    assert oov_rate(train, test) == 0.0
    assert oov_rate(train, dev) == 0.0


def test_libritts_and_seedtts_sets_are_pairwise_disjoint_and_covered():
    splits = libritts_sentences(0)
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not set(splits[a]) & set(splits[b]), (a, b)
    train = splits["train-clean-100"]
    for held in ("dev-clean", "test-clean", "seedtts_prompt", "seedtts_text"):
        assert oov_rate(train, splits[held]) == 0.0


def test_oov_rate_counts_tokens():
    assert oov_rate(["the cat sat"], ["the dog sat", "a cat"]) == pytest.approx(2 / 5)


def test_impossible_request_is_a_clear_error():
    with pytest.raises(SentenceError, match="grammar exhausted"):
        split_sentences(0, 1, {"test": 50})  # one training sentence cannot cover 50
