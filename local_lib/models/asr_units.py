"""Output units of our ASRs: the project's CharTokenizer over scoring-normalised text, plus
``<sos/eos>`` as the last id (the ESPnet layout).

Text goes through the scoring normalisation first, so the ASRs learn to emit exactly what
WER is computed on (no case, no punctuation). The tokenizer's padding id 0 doubles as the CTC
blank: it never occurs inside a transcript.
"""

from collections.abc import Iterable, Sequence

from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.eval.text_norm import normalize_text

SOS_EOS = "<sos/eos>"


class AsrUnits:
    blank_id = CharTokenizer.pad_id

    def __init__(self, tokens: Sequence[str]):
        if not tokens or tokens[-1] != SOS_EOS:
            raise ValueError(f"ASR unit list must end with {SOS_EOS}")
        self.tokenizer = CharTokenizer(list(tokens[:-1]))
        self.tokens = list(tokens)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> "AsrUnits":
        return cls([*CharTokenizer.build(normalize_text(t) for t in texts).tokens, SOS_EOS])

    @property
    def size(self) -> int:
        return len(self.tokens)

    @property
    def sos_eos(self) -> int:
        return len(self.tokens) - 1

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(normalize_text(text))

    def pieces(self, ids: Iterable[int]) -> list[str]:
        """Surface text per id; specials (blank, unk, sos/eos) are empty."""
        specials = {self.blank_id, self.tokenizer.unk_id, self.sos_eos}
        return ["" if int(i) in specials else self.tokenizer.decode([int(i)]) for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join("".join(self.pieces(ids)).split())
