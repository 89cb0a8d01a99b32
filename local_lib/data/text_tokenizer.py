"""Character tokenizer shared by Grad-TTS and the small codec LM.

Characters are enough for the mini corpora and keep the vocabulary tied to the transcripts
actually seen in training; anything unseen maps to ``<unk>`` rather than failing at synthesis.

Normalisation (applied before building and before encoding): Unicode NFKC, lower-case,
every run of whitespace collapsed to one space, leading/trailing whitespace removed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from local_lib.atomic_io import write_text_atomic

PAD = "<pad>"
UNK = "<unk>"
SPACE = "<space>"
_SPECIALS = (PAD, UNK)
_WHITESPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """The one normalisation every text path uses, so vocab building and encoding agree."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _WHITESPACE.sub(" ", text).strip()


class CharTokenizer:
    """Maps normalised characters to ids; ``pad_id`` is 0 and ``unk_id`` is 1."""

    pad_id = 0
    unk_id = 1

    def __init__(self, tokens: Sequence[str]) -> None:
        if tuple(tokens[: len(_SPECIALS)]) != _SPECIALS:
            raise ValueError(f"token list must start with {_SPECIALS}, got {list(tokens[:2])}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("token list has duplicate entries")
        self.tokens = list(tokens)
        self._ids = {tok: i for i, tok in enumerate(self.tokens)}

    @classmethod
    def build(cls, transcripts: Iterable[str]) -> CharTokenizer:
        """Vocabulary = every character of the normalised transcripts, in sorted order."""
        chars: set[str] = set()
        for text in transcripts:
            chars.update(normalize_text(text))
        return cls([*_SPECIALS, *(_to_token(c) for c in sorted(chars))])

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        return [self._ids.get(_to_token(c), self.unk_id) for c in normalize_text(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Inverse of encode on known characters; padding is dropped, ``<unk>`` kept visibly."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"token id {i} outside vocabulary of size {len(self.tokens)}")
            if i == self.pad_id:
                continue
            out.append(self.surface(i))
        return "".join(out)

    def surface(self, token_id: int) -> str:
        """The text of one id (``<space>`` is a space)."""
        tok = self.tokens[int(token_id)]
        return " " if tok == SPACE else tok

    def save(self, path: str | Path) -> None:
        """One token per line (space written as ``<space>``), written atomically."""
        write_text_atomic(Path(path), "".join(f"{tok}\n" for tok in self.tokens))

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        path = Path(path)
        tokens = []
        with open(path, encoding="utf-8") as fd:
            for lineno, line in enumerate(fd, 1):
                tok = line.rstrip("\n")
                if not tok:
                    raise ValueError(f"{path}:{lineno}: empty token line")
                tokens.append(tok)
        try:
            return cls(tokens)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err


def _to_token(char: str) -> str:
    return SPACE if char == " " else char
