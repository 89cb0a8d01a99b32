"""Several synthesised samples per test utterance, scored as one per-utterance mean.

A sampled TTS system gives a different take each time, and with one take per utterance that
noise is read as a difference between systems: on the GRPO recipe's dev set, the same base
sampled with seed 1 instead of 0 came out 8.8 WER points worse, with a paired interval that
excluded zero. Stage 6 can therefore draw K takes per utterance. Take 0 keeps the utterance id
(``<utt>``, so K = 1 is what it always was); take k > 0 is ``<utt>#<k>`` in ``wav.scp``.
Stage 7 scores every take and averages them per utterance, so the paired bootstrap still
resamples utterances and each utterance counts once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

SEPARATOR = "#"
_TAKE = re.compile(rf"^(?P<utt>.+){SEPARATOR}(?P<k>[1-9][0-9]*)$")
# columns copied from take 0 rather than averaged
TEXT_COLUMNS = ("utt", "ref_text", "hyp_text", "emo_label", "emo_pred")


def take_key(utt: str, k: int) -> str:
    """The id of take ``k`` of ``utt`` (take 0 is the utterance id itself)."""
    if k < 0:
        raise ValueError(f"take index must be >= 0, got {k}")
    return utt if k == 0 else f"{utt}{SEPARATOR}{k}"


def takes_of(utts: Iterable[str], keys: Iterable[str], where: str) -> dict[str, list[str]]:
    """``{utt: [key of take 0, take 1, ...]}`` for the keys of a wav.scp; every utterance must
    have the same number of takes, numbered without gaps (``where`` names the file)."""
    utts = list(utts)
    found: dict[str, dict[int, str]] = {u: {} for u in utts}
    for key in keys:
        m = _TAKE.match(key)
        utt, k = (m["utt"], int(m["k"])) if m and m["utt"] in found else (key, 0)
        if utt in found:
            found[utt][k] = key
    counts = {len(found[u]) for u in utts}
    for utt in utts:
        takes = found[utt]
        if 0 not in takes:
            raise ValueError(f"{where}: {utt}: no audio for this utterance")
        if sorted(takes) != list(range(len(takes))) or len(counts) > 1:
            raise ValueError(
                f"{where}: {utt}: takes {sorted(takes)}; every utterance needs takes "
                f"0..K-1 for one K (found K in {sorted(counts)})"
            )
    return {u: [found[u][k] for k in range(len(found[u]))] for u in utts}


def takes_of_items(keys_and_takes: Iterable[tuple[str, int]]) -> dict[str, list[str]]:
    """``{utt: [keys]}`` from (key, take index) pairs, e.g. of scored items."""
    takes: dict[str, list[str]] = {}
    for key, k in keys_and_takes:
        utt = key if k == 0 else key.removesuffix(f"{SEPARATOR}{k}")
        takes.setdefault(utt, []).append(key)
    return takes


def _mean(values: list) -> float | None:
    nums = [float(v) for v in values if v is not None and v != ""]
    nums = [v for v in nums if not math.isnan(v)]
    return sum(nums) / len(nums) if nums else (math.nan if values else None)


def average_takes(rows: list[dict], takes: dict[str, list[str]]) -> list[dict]:
    """One row per utterance: numbers averaged over its takes (NaN ones left out), text
    columns from take 0. With one take per utterance the rows come back unchanged."""
    by_key = {row["utt"]: row for row in rows}
    out = []
    for utt, keys in takes.items():
        group = [by_key[k] for k in keys]
        if len(group) == 1:
            out.append(group[0])
            continue
        merged = {c: v for c, v in group[0].items() if c in TEXT_COLUMNS}
        merged["utt"] = utt
        for column in {c for row in group for c in row} - set(TEXT_COLUMNS):
            merged[column] = _mean([row.get(column) for row in group if column in row])
        out.append(merged)
    return out
