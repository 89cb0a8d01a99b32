"""Output units of our ASRs: the text units (``local_lib.data.text_units``) over
scoring-normalised text, plus ``<sos/eos>`` as the last id (the ESPnet layout).

Text goes through the scoring normalisation first, so the ASRs learn to emit exactly what
WER is computed on (no case, no punctuation), whatever the units: characters of that text, or
the recipe's shared sentencepiece model. The units' padding id 0 doubles as the CTC blank: it
never occurs inside a transcript.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.data.text_units import SentencePieceUnits, TextUnits, units_for
from local_lib.eval.text_norm import normalize_text

SOS_EOS = "<sos/eos>"


class AsrUnits:
    blank_id = CharTokenizer.pad_id

    def __init__(self, text_units: TextUnits):
        if text_units.pad_id != self.blank_id:
            raise ValueError(f"text units must pad with id {self.blank_id} (the CTC blank)")
        self.text_units = text_units
        self.tokens = [*text_units.tokens, SOS_EOS]

    @classmethod
    def from_texts(cls, texts: Iterable[str], token_list: str | Path | None = None) -> AsrUnits:
        """The stage-2 sentencepiece model of ``token_list``, else the characters of the
        scoring-normalised ``texts``."""
        return cls(units_for(token_list, (normalize_text(t) for t in texts)))

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> AsrUnits:
        """The units a checkpoint saved with ``state()`` (``tokens``, and the sentencepiece
        model for BPE units)."""
        tokens = list(state["tokens"])
        if not tokens or tokens[-1] != SOS_EOS:
            raise ValueError(f"ASR unit list must end with {SOS_EOS}")
        if "sentencepiece" not in state:
            return cls(CharTokenizer(tokens[:-1]))
        units = cls(SentencePieceUnits(state["sentencepiece"]))
        if units.tokens != tokens:
            raise ValueError("checkpoint tokens differ from its sentencepiece model's pieces")
        return units

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps to rebuild these units (``from_state``)."""
        out: dict[str, Any] = {"tokens": list(self.tokens)}
        if isinstance(self.text_units, SentencePieceUnits):
            out["sentencepiece"] = self.text_units.model_proto
        return out

    @property
    def size(self) -> int:
        return len(self.tokens)

    @property
    def sos_eos(self) -> int:
        return len(self.tokens) - 1

    def encode(self, text: str) -> list[int]:
        return self.text_units.encode(normalize_text(text))

    def pieces(self, ids: Iterable[int]) -> list[str]:
        """Surface text per id; specials (blank, unk, sos/eos) are empty."""
        specials = {self.blank_id, self.text_units.unk_id, self.sos_eos}
        return ["" if int(i) in specials else self.text_units.surface(int(i)) for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join("".join(self.pieces(ids)).split())
