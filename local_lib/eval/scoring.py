"""Score one system's audio utterance by utterance with the evaluator models.

The evaluators are passed in as objects (see the Protocols) so the same code scores natural,
resynthesised and synthesised audio, and tests can use small fakes.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from local_lib.data.audio import load_audio
from local_lib.data.features import LogMelConfig, log_mel
from local_lib.eval.error_rate import char_errors, word_errors
from local_lib.eval.prosody import ProsodyConfig, prosody_distance
from local_lib.eval.verification import VerificationResult, verification_trials

log = logging.getLogger(__name__)

BAD_CASE_WER = 0.5


class Transcriber(Protocol):
    def transcribe(self, wavs: list[np.ndarray]) -> list[str]: ...


class Embedder(Protocol):
    def embed(self, wavs: list[np.ndarray]) -> np.ndarray: ...


class Classifier(Embedder, Protocol):
    def classify(self, wavs: list[np.ndarray]) -> list[str]: ...


@dataclass(frozen=True)
class ScoreItem:
    """One utterance to score: the audio under test and what it is compared with."""

    utt: str
    text: str
    wav: Path
    ref_wav: Path | None = None
    speaker: str | None = None
    emotion: str | None = None
    take: int = 0  # several takes of one utterance: only take 0 enters speaker verification


class Aligner(Protocol):
    """Per item, how sharply and how steadily an attention ASR's text follows the audio:
    ``(purity [B], monotonicity [B])`` (W3AR's view of the audio, ``local_lib.rl.w3ar``)."""

    def __call__(
        self, wavs: list[np.ndarray], texts: list[str]
    ) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass
class Evaluators:
    asr: Transcriber | None = None
    speaker: Embedder | None = None
    emotion: Classifier | None = None
    aligner: Aligner | None = None


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b`` (SIM)."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.einsum("nd,nd->n", a, b)


def _text_scores(ref: str, hyp: str) -> dict:
    w, c = word_errors(ref, hyp), char_errors(ref, hyp)
    return {
        "hyp_text": hyp,
        "word_errors": w.errors,
        "words": w.ref_len,
        "char_errors": c.errors,
        "chars": c.ref_len,
        "wer": w.rate,
        "cer": c.rate,
        "bad_case": int(w.rate > BAD_CASE_WER),
    }


def _score_batch(
    items: list[ScoreItem], ev: Evaluators, sample_rate: int, prosody: bool
) -> tuple[list[dict], np.ndarray | None]:
    wavs = [load_audio(it.wav, sample_rate) for it in items]
    have_ref = all(it.ref_wav is not None for it in items)
    refs = [load_audio(it.ref_wav, sample_rate) for it in items] if have_ref else None
    rows = [{"utt": it.utt, "ref_text": it.text} for it in items]
    if ev.asr is not None:
        if getattr(ev.asr, "lexicon", None) is None:
            hyps = ev.asr.transcribe(wavs)
        else:  # a closed-vocabulary evaluator: its raw output is scored too
            raw = ev.asr.transcribe_open(wavs)
            hyps = ev.asr.closed(raw)
            for row, it, hyp in zip(rows, items, raw, strict=True):
                row["open_word_errors"] = word_errors(it.text, hyp).errors
        for row, it, hyp in zip(rows, items, hyps):
            row.update(_text_scores(it.text, hyp))
    if ev.aligner is not None:
        purity, monotonicity = ev.aligner(wavs, [it.text for it in items])
        for row, p, m in zip(rows, purity, monotonicity, strict=True):
            row["attn_purity"], row["attn_monotonicity"] = float(p), float(m)
    spk_emb = None
    if ev.speaker is not None:
        spk_emb = ev.speaker.embed(wavs)
        if refs is not None:
            for row, sim in zip(rows, cosine_rows(spk_emb, ev.speaker.embed(refs))):
                row["spk_sim"] = float(sim)
    if ev.emotion is not None:
        for row, it, pred in zip(rows, items, ev.emotion.classify(wavs)):
            row["emo_pred"] = pred
            if it.emotion is not None:
                row["emo_label"], row["emo_correct"] = it.emotion, int(pred == it.emotion)
        if refs is not None:
            for row, sim in zip(rows, cosine_rows(ev.emotion.embed(wavs), ev.emotion.embed(refs))):
                row["emo_sim"] = float(sim)
    if prosody and refs is not None:
        mel_cfg = LogMelConfig(sample_rate=sample_rate)
        pcfg = ProsodyConfig(
            sample_rate=sample_rate, hop_length=mel_cfg.hop_length, win_length=mel_cfg.win_length
        )
        for row, wav, ref in zip(rows, wavs, refs):
            d = prosody_distance(wav, ref, log_mel(wav, mel_cfg), log_mel(ref, mel_cfg), pcfg)
            row["f0_rmse_hz"], row["energy_rmse_db"] = d.f0_rmse_hz, d.energy_rmse_db
    return rows, spk_emb


def score_items(
    items: list[ScoreItem],
    evaluators: Evaluators,
    sample_rate: int = 16000,
    batch_size: int = 16,
    prosody: bool = True,
) -> tuple[list[dict], VerificationResult | None]:
    """Per-utterance score rows, plus speaker verification over the audio under test when a
    speaker encoder is given and the items name at least two speakers."""
    rows: list[dict] = []
    embeddings: list[np.ndarray] = []  # of every item, in order
    for start in range(0, len(items), batch_size):
        batch_rows, emb = _score_batch(
            items[start : start + batch_size], evaluators, sample_rate, prosody
        )
        rows += batch_rows
        if emb is not None:
            embeddings.append(emb)
        log.info("scored %d/%d utterances", len(rows), len(items))
    first = [i for i, it in enumerate(items) if it.take == 0]
    speakers = [items[i].speaker for i in first]
    verification = None
    if (
        embeddings
        and None not in speakers
        and len(set(speakers)) > 1
        and len(speakers) > len(set(speakers))
    ):
        verification = verification_trials(np.concatenate(embeddings)[first], speakers)
    return rows, verification
