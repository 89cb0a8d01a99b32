"""Text normalisation applied to both reference and hypothesis before WER/CER.

Written down once so every recipe scores the same way:

1. Unicode NFKC, then lower-case (``str.casefold``).
2. Curly apostrophes become ``'``; hyphens, dashes, slashes and underscores become spaces
   (so "well-known" counts as two words, as ASR outputs usually split it).
3. Every character that is not a letter, a digit, an apostrophe or whitespace is removed
   (punctuation carries no words).
4. Apostrophes not between two letters/digits are removed ("'tis" -> "tis", "dogs'" -> "dogs").
5. Runs of whitespace become one space; leading/trailing space is stripped.

Digits are kept as written (no number verbalisation): the mini corpora spell numbers out, and
verbalising would need a language-specific module.
"""

import re
import unicodedata

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_SPLITTERS = re.compile(r"[-\u2010-\u2015/_]+")
_STRAY_APOSTROPHE = re.compile(r"(?<![\w])'|'(?![\w])")
_SPACES = re.compile(r"\s+")


def _keep(char: str) -> bool:
    return char == "'" or char.isspace() or unicodedata.category(char)[0] in ("L", "N", "M")


def normalize_text(text: str) -> str:
    """Normalise ``text`` for scoring (see the module docstring for the exact rules)."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
    text = _SPLITTERS.sub(" ", text)
    text = "".join(c for c in text if _keep(c))
    text = _STRAY_APOSTROPHE.sub("", text)
    return _SPACES.sub(" ", text).strip()
