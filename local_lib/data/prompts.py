"""Speaker prompts for zero-shot synthesis: each target utterance is paired with another
utterance of the same speaker, whose text and speech tokens precede the target text.

The choice depends only on the seed and the utterance ids, never on file order or on how the
work is split into jobs, so SFT, RL and synthesis shards all agree on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping


class PromptError(ValueError):
    """A target utterance has no usable prompt (its speaker has no other utterance)."""


def _rank(seed: int, utt: str, candidate: str) -> bytes:
    return hashlib.sha1(f"{seed}\0{utt}\0{candidate}".encode()).digest()


def pick_prompts(
    targets: Mapping[str, str],
    pool: Mapping[str, str],
    seed: int,
    source: str = "the prompt pool",
    allowed: Callable[[str, str], bool] | None = None,
    wanted: str = "",
) -> dict[str, str]:
    """``targets`` and ``pool`` map utterance -> speaker; returns target utterance -> prompt
    utterance, a pool utterance of the same speaker other than the target itself and, with
    ``allowed(target, candidate)``, one it accepts (``wanted`` says what, in the error)."""
    by_speaker: dict[str, list[str]] = {}
    for utt, spk in pool.items():
        by_speaker.setdefault(spk, []).append(utt)
    prompts: dict[str, str] = {}
    for utt, spk in targets.items():
        candidates = [
            c for c in by_speaker.get(spk, []) if c != utt and (allowed is None or allowed(utt, c))
        ]
        if not candidates:
            raise PromptError(
                f"{utt}: speaker {spk} has no other utterance{wanted} in {source} "
                "to use as a prompt"
            )
        prompts[utt] = min(candidates, key=lambda c: _rank(seed, utt, c))
    return prompts
