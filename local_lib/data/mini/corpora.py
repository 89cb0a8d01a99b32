"""The mini corpora by name, and the one call that builds any of them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from local_lib.data.mini.asr import plan_asr
from local_lib.data.mini.build import build_once
from local_lib.data.mini.esd import plan_esd
from local_lib.data.mini.espeak import require_espeak
from local_lib.data.mini.libritts import plan_libritts
from local_lib.data.mini.plan import CorpusPlan
from local_lib.data.mini.seedtts import plan_seedtts

log = logging.getLogger(__name__)

CORPORA: dict[str, Callable[[int, int | None], CorpusPlan]] = {
    "mini_asr": plan_asr,
    "mini_esd": plan_esd,
    "mini_libritts": plan_libritts,
    "mini_seedtts": plan_seedtts,
}


def make_mini_corpus(
    corpus: str, out_dir: Path, seed: int = 0, nj: int = 1, max_sentences: int | None = None
) -> bool:
    """Build `corpus` under `out_dir` unless that exact build is already there.

    Returns True if it built, False if `out_dir` already held it. `max_sentences` shrinks the
    corpus (tests only); it is part of the build's signature.
    """
    if corpus not in CORPORA:
        raise ValueError(f"unknown mini corpus {corpus!r}; choose one of {sorted(CORPORA)}")
    require_espeak()
    signature = {"corpus": corpus, "seed": seed, "max_sentences": max_sentences}

    def write(tmp: Path) -> None:
        start = time.monotonic()
        plan = CORPORA[corpus](seed, max_sentences)
        log.info("%s: %d utterances with %d jobs", corpus, len(plan.utterances), nj)
        plan.write(tmp, nj)
        log.info("%s: synthesised in %.1f s", corpus, time.monotonic() - start)

    return build_once(Path(out_dir), signature, write)
