"""Kaldi data dirs -> what Grad-TTS needs per utterance: text, speaker, emotion, log-mel.

Emotions come from ``utt2emo`` when the dir has one; otherwise every utterance gets
``NO_EMOTION`` so emotion-free corpora train the same model with one emotion embedding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import kaldiio
import numpy as np
import torch
from torch import Tensor

from local_lib.data.kaldi_dir import load_data_dir

log = logging.getLogger(__name__)
NO_EMOTION = "none"


@dataclass
class TTSItems:
    """Per-utterance fields in C-locale utterance order; ``mels`` is None when not loaded."""

    utts: list[str]
    texts: list[str]
    speakers: list[str]
    emotions: list[str]
    mels: list[np.ndarray] | None = None


def load_tts_items(data_dir: str | Path, feats_scp: str | Path | None = None) -> TTSItems:
    """Read text, utt2spk and utt2emo of ``data_dir`` (and the log-mels when ``feats_scp``).

    An utterance without a feature matrix is an error naming the scp file and the utterance.
    """
    data = load_data_dir(Path(data_dir))
    utts = data.utts
    missing = [u for u in utts if u not in data.text]
    if missing:
        raise ValueError(f"{data_dir}/text: {missing[0]}: no transcript ({len(missing)} such)")
    utt2emo = data.extras.get("utt2emo")
    if utt2emo is not None:
        no_emo = [u for u in utts if u not in utt2emo]
        if no_emo:
            raise ValueError(f"{data_dir}/utt2emo: {no_emo[0]}: no emotion ({len(no_emo)} such)")
    items = TTSItems(
        utts=utts,
        texts=[data.text[u] for u in utts],
        speakers=[data.utt2spk[u] for u in utts],
        emotions=[utt2emo[u] if utt2emo else NO_EMOTION for u in utts],
    )
    if feats_scp is not None:
        items.mels = _load_mels(Path(feats_scp), utts)
    return items


def _load_mels(feats_scp: Path, utts: list[str]) -> list[np.ndarray]:
    table = kaldiio.load_scp(str(feats_scp))
    mels = []
    for i, utt in enumerate(utts, start=1):
        if utt not in table:
            raise ValueError(f"{feats_scp}: {utt}: no feature matrix for this utterance")
        mels.append(np.array(table[utt], dtype=np.float32))
        if i % 1000 == 0:
            log.info("loaded %d/%d feature matrices from %s", i, len(utts), feats_scp)
    return mels


def pad_mels(mels: list[np.ndarray]) -> tuple[Tensor, Tensor]:
    """``[B, frames, n_mels]`` zero-padded log-mels and ``[B]`` frame counts."""
    lengths = torch.tensor([m.shape[0] for m in mels], dtype=torch.long)
    out = torch.zeros(len(mels), int(lengths.max()), mels[0].shape[1])
    for row, mel in enumerate(mels):
        out[row, : mel.shape[0]] = torch.as_tensor(mel)
    return out, lengths
