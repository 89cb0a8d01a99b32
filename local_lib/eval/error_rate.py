"""Word and character error counts on normalised text (jiwer does the alignment)."""

from dataclasses import dataclass

import jiwer

from local_lib.eval.text_norm import normalize_text


@dataclass(frozen=True)
class ErrorCounts:
    """Edit counts of one hypothesis against one reference."""

    substitutions: int
    deletions: int
    insertions: int
    ref_len: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """Error rate; an empty reference scores 0 when the hypothesis is empty, else 1 per
        inserted unit (so it stays finite and still penalises babble)."""
        if self.ref_len == 0:
            return float(self.insertions)
        return self.errors / self.ref_len


def _count(ref_units: list[str], hyp_units: list[str]) -> ErrorCounts:
    if not ref_units:
        return ErrorCounts(0, 0, len(hyp_units), 0)
    if not hyp_units:
        return ErrorCounts(0, len(ref_units), 0, len(ref_units))
    out = jiwer.process_words(" ".join(ref_units), " ".join(hyp_units))
    return ErrorCounts(out.substitutions, out.deletions, out.insertions, len(ref_units))


def word_errors(reference: str, hypothesis: str) -> ErrorCounts:
    """Word edit counts after :func:`normalize_text` on both sides."""
    return _count(normalize_text(reference).split(), normalize_text(hypothesis).split())


def char_errors(reference: str, hypothesis: str) -> ErrorCounts:
    """Character edit counts after normalisation; spaces are not counted as characters."""
    ref = list(normalize_text(reference).replace(" ", ""))
    hyp = list(normalize_text(hypothesis).replace(" ", ""))
    return _count(ref, hyp)
