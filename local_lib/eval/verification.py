"""Speaker-verification quality of a set of embeddings: EER and the same/different SIM gap.

Scored on the audio under test, so it shows whether synthesised (or resynthesised) speech still
carries the speaker identity the evaluator's encoder relies on.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VerificationResult:
    eer: float
    same_sim: float
    diff_sim: float
    n_same: int
    n_diff: int

    @property
    def sim_gap(self) -> float:
        return self.same_sim - self.diff_sim


def equal_error_rate(scores: np.ndarray, is_target: np.ndarray) -> float:
    """EER: the error where false acceptance equals false rejection, over all thresholds
    (linear interpolation between the two neighbouring thresholds)."""
    scores = np.asarray(scores, dtype=np.float64)
    is_target = np.asarray(is_target, dtype=bool)
    n_tar, n_non = int(is_target.sum()), int((~is_target).sum())
    if n_tar == 0 or n_non == 0:
        raise ValueError("EER needs both target and non-target trials")
    order = np.argsort(-scores, kind="stable")
    tar_sorted = is_target[order]
    # Accept the top k trials, k = 0..N.
    far = np.concatenate([[0.0], np.cumsum(~tar_sorted) / n_non])
    frr = np.concatenate([[1.0], 1.0 - np.cumsum(tar_sorted) / n_tar])
    k = int(np.argmax(far >= frr))
    if k == 0:
        return 0.0
    d_prev, d_next = frr[k - 1] - far[k - 1], far[k] - frr[k]
    w = d_prev / (d_prev + d_next) if d_prev + d_next > 0 else 0.0
    return float((1 - w) * (far[k - 1] + frr[k - 1]) / 2 + w * (far[k] + frr[k]) / 2)


def verification_trials(embeddings: np.ndarray, speakers: list[str]) -> VerificationResult:
    """All pairs of distinct utterances as trials, cosine scores on L2-normalised embeddings."""
    emb = np.asarray(embeddings, dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    spk = np.asarray(speakers)
    i, j = np.triu_indices(len(spk), k=1)
    scores = np.einsum("nd,nd->n", emb[i], emb[j])
    same = spk[i] == spk[j]
    return VerificationResult(
        eer=equal_error_rate(scores, same),
        same_sim=float(scores[same].mean()),
        diff_sim=float(scores[~same].mean()),
        n_same=int(same.sum()),
        n_diff=int((~same).sum()),
    )
