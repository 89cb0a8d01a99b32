"""Utterances of a Kaldi data dir held in memory for the small reward/evaluator trainings."""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from local_lib.data.audio import load_audio
from local_lib.data.kaldi_dir import load_data_dir

log = logging.getLogger(__name__)


@dataclass
class Utterances:
    utts: list[str]
    wavs: list[np.ndarray]
    texts: list[str]
    speakers: list[str]
    emotions: list[str] | None


def load_utterances(
    data_dir: Path, sample_rate: int = 16000, max_utts: int | None = None
) -> Utterances:
    """Audio, text, speaker and (when ``utt2emo`` exists) emotion of every utterance.

    ``max_utts`` keeps an evenly spaced subset (every k-th utterance), so a debug run still sees
    every speaker and emotion of a corpus sorted by speaker.
    """
    data = load_data_dir(Path(data_dir))
    utts = data.utts
    if max_utts is not None and max_utts < len(utts):
        utts = [utts[i] for i in np.linspace(0, len(utts) - 1, max_utts).round().astype(int)]
    missing = [u for u in utts if u not in data.text or u not in data.wav_scp]
    if missing:
        raise ValueError(
            f"{data_dir}: {missing[0]}: no text or wav.scp entry ({len(missing)} such)"
        )
    utt2emo = data.extras.get("utt2emo")
    wavs = []
    for i, utt in enumerate(utts, start=1):
        wavs.append(load_audio(data.wav_scp[utt], sample_rate))
        if i % 500 == 0:
            log.info("loaded %d/%d utterances of %s", i, len(utts), data_dir)
    return Utterances(
        utts=utts,
        wavs=wavs,
        texts=[data.text[u] for u in utts],
        speakers=[data.utt2spk[u] for u in utts],
        emotions=[utt2emo[u] for u in utts] if utt2emo is not None else None,
    )
