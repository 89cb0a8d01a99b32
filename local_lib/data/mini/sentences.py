"""Deterministic sentence sets for the mini corpora, with disjoint splits.

Held-out sentences (dev, test, prompts) only use words that the training sentences contain, so a
model trained on train meets unseen sentences but no unseen words.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping

from local_lib.data.mini.grammar import SLOTS, TEMPLATES

MIN_WORDS = 4
MAX_WORDS = 12
_SLOT = re.compile(r"\{(\w+)\}")
_WORD = re.compile(r"[a-z']+")
_A_BEFORE_VOWEL = re.compile(r"\ba ([aeiou])")
MAX_MISSES = 20000  # draws without a new acceptable sentence before giving up


class SentenceError(ValueError):
    """Raised when the grammar cannot give the requested number of sentences."""


def _expand(template: str, rng: random.Random, used: dict[str, set[str]]) -> str:
    """Fill slots recursively; a slot never repeats a value within one sentence."""

    def fill(match: re.Match[str]) -> str:
        slot = match.group(1)
        taken = used.setdefault(slot, set())
        choices = [c for c in SLOTS[slot] if c not in taken] or list(SLOTS[slot])
        choice = rng.choice(choices)
        taken.add(choice)
        return _expand(choice, rng, used)

    return _SLOT.sub(fill, template)


def make_sentence(rng: random.Random) -> str:
    """One sentence from a random template, article-corrected and capitalised."""
    text = _expand(rng.choice(TEMPLATES), rng, {})
    text = _A_BEFORE_VOWEL.sub(r"an \1", text)
    return text[0].upper() + text[1:]


def words(sentence: str) -> list[str]:
    """Lower-cased words without punctuation (the unit for vocabulary and OOV checks)."""
    return _WORD.findall(sentence.lower())


def vocabulary(sentences: Iterable[str]) -> set[str]:
    """The set of words used by `sentences`."""
    return {w for s in sentences for w in words(s)}


def oov_rate(train: Iterable[str], test: Iterable[str]) -> float:
    """Fraction of test word tokens missing from the training vocabulary."""
    vocab = vocabulary(train)
    tokens = [w for s in test for w in words(s)]
    return sum(w not in vocab for w in tokens) / max(len(tokens), 1)


def split_sentences(
    seed: int,
    n_train: int,
    held_out: Mapping[str, int],
    salt: str = "",
    exclude: Iterable[str] = (),
) -> dict[str, list[str]]:
    """Return {"train": [...], <name>: [...] for each held-out set}, all pairwise disjoint.

    Deterministic for (seed, salt, sizes, exclude). Held-out sets are drawn in the order given,
    after the training set, and keep only sentences whose words all occur in training. No split
    contains a sentence of `exclude` (another corpus's held-out sentences).
    """
    rng = random.Random(f"mini-sentences:{salt}:{seed}")
    seen: set[str] = set(exclude)

    def draw(accept: Callable[[str], bool]) -> str:
        for _ in range(MAX_MISSES):
            sentence = make_sentence(rng)
            if sentence in seen or not MIN_WORDS <= len(words(sentence)) <= MAX_WORDS:
                continue
            if accept(sentence):
                seen.add(sentence)
                return sentence
        raise SentenceError(
            f"grammar exhausted: no new sentence in {MAX_MISSES} draws after {len(seen)} "
            f"(wanted {n_train} training and {dict(held_out)} held-out, seed {seed}, "
            f"salt {salt!r})"
        )

    splits = {"train": [draw(lambda s: True) for _ in range(n_train)]}
    vocab = vocabulary(splits["train"])
    for name, count in held_out.items():
        splits[name] = [draw(lambda s: set(words(s)) <= vocab) for _ in range(count)]
    _assert_disjoint(splits)
    return splits


def _assert_disjoint(splits: Mapping[str, list[str]]) -> None:
    """Guard the property every recipe relies on: no sentence in two splits."""
    names = list(splits)
    for i, a in enumerate(names):
        if len(set(splits[a])) != len(splits[a]):
            raise SentenceError(f"duplicate sentence within split {a}")
        for b in names[i + 1:]:
            common = set(splits[a]) & set(splits[b])
            if common:
                raise SentenceError(f"splits {a} and {b} share {sorted(common)[:3]}")
