"""Rendering many utterances with a pool of espeak-ng workers."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from local_lib.data.audio import save_audio
from local_lib.data.mini.espeak import Prosody, Voice, check_voices, synthesize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Utterance:
    """One wav to synthesise: where it goes, what is said, and how."""

    path: Path
    text: str
    voice: Voice
    prosody: Prosody
    sample_rate: int


def render_one(utt: Utterance) -> None:
    """Synthesise and write one wav (16-bit PCM, written atomically)."""
    wav = synthesize(utt.text, utt.voice, utt.prosody, utt.sample_rate)
    save_audio(utt.path, wav, utt.sample_rate)


def _init_worker() -> None:
    """One torch thread per worker: the pool already uses every core."""
    torch.set_num_threads(1)


def render_all(utts: Sequence[Utterance], nj: int) -> None:
    """Render every utterance with `nj` worker processes, logging progress every tenth."""
    check_voices({u.voice for u in utts})
    for folder in sorted({u.path.parent for u in utts}):
        folder.mkdir(parents=True, exist_ok=True)
    step = max(len(utts) // 10, 1)
    # Workers even for nj=1, so the caller's torch thread settings are left alone; fork keeps
    # the parent's imports (torch) instead of paying for them once per worker.
    with multiprocessing.get_context("fork").Pool(nj, initializer=_init_worker) as pool:
        _drain(pool.imap_unordered(render_one, utts, chunksize=8), len(utts), step)


def _drain(results: Iterable[None], total: int, step: int) -> None:
    """Consume `results`, logging how many utterances are done."""
    for done, _ in enumerate(results, start=1):
        if done % step == 0 or done == total:
            log.info("rendered %d/%d utterances", done, total)
