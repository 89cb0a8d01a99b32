"""Text units of every model that reads or writes text: characters, or one sentencepiece model.

ESPnet's ``--token_type char|bpe`` convention. With ``char`` each model keeps the characters of
the text it trains on (the codec LM with punctuation, the ASRs on scoring-normalised text), as
this repository always did. With ``bpe`` stage 2 trains one sentencepiece model (unigram or
BPE) on the training set's normalised text into ``dump/token_list/`` and the codec LM, the
reward ASRs and the evaluator ASR all read it from there, so the same text is the same ids in
each. Grad-TTS keeps characters (its monotonic alignment is over characters); a Llasa-style
checkpoint keeps its own Hugging Face tokenizer.

Sentencepiece ids are our ids: the model is trained with ``<pad>`` at 0 (the ASRs' CTC blank)
and ``<unk>`` at 1, as ``CharTokenizer`` has them, and no bos/eos (each model adds its own).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import sentencepiece as spm
import yaml

from local_lib.atomic_io import atomic_path, write_text_atomic
from local_lib.config import to_mapping
from local_lib.data.text_tokenizer import PAD, UNK, CharTokenizer, normalize_text

CONFIG_FILE = "config.yaml"
MODEL_FILE = "bpe.model"
TOKENS_FILE = "tokens.txt"
_WORD_START = "\u2581"  # sentencepiece's word-boundary mark


@dataclass(frozen=True)
class TokenListConfig:
    """``conf/token_list*.yaml``: the units stage 2 makes (``nbpe`` etc. only for ``bpe``)."""

    token_type: Literal["char", "bpe"] = "char"
    nbpe: int = 100
    bpemode: Literal["unigram", "bpe"] = "unigram"
    # Kept as one unit each and never split (ESPnet's bpe_nlsyms), e.g. a tag a corpus writes
    # into its transcripts; given as they appear after normalisation (lower case, no spaces).
    user_symbols: tuple[str, ...] = ()


class SentencePieceUnits:
    """A sentencepiece model over ``normalize_text`` output; ``pad_id`` 0, ``unk_id`` 1."""

    pad_id = 0
    unk_id = 1

    def __init__(self, model_proto: bytes, where: str = "sentencepiece model") -> None:
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        if (self._sp.pad_id(), self._sp.unk_id()) != (self.pad_id, self.unk_id):
            raise ValueError(
                f"{where}: needs <pad> at id 0 and <unk> at id 1, has them at "
                f"{self._sp.pad_id()} and {self._sp.unk_id()} (train it with make_token_list)"
            )
        self.model_proto = model_proto
        self.tokens = [self._sp.id_to_piece(i) for i in range(self._sp.get_piece_size())]

    @classmethod
    def train(cls, texts: Iterable[str], conf: TokenListConfig) -> SentencePieceUnits:
        """Trained on the normalised ``texts``; deterministic for the same texts and config."""
        symbols = [normalize_text(s) for s in conf.user_symbols]
        bad = [s for s in symbols if not s or " " in s]
        if bad:
            raise ValueError(f"user_symbols must be single non-empty words, got {bad}")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=(normalize_text(t) for t in texts),
            model_writer=model,
            vocab_size=conf.nbpe,
            model_type=conf.bpemode,
            character_coverage=1.0,
            pad_id=cls.pad_id,
            unk_id=cls.unk_id,
            bos_id=-1,
            eos_id=-1,
            pad_piece=PAD,
            unk_piece=UNK,
            user_defined_symbols=symbols,
            normalization_rule_name="identity",  # normalize_text has done it, the same everywhere
            num_threads=1,
            minloglevel=2,
        )
        return cls(model.getvalue())

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(normalize_text(text), out_type=int)

    def decode(self, ids: Iterable[int]) -> str:
        """Inverse of encode on known text; padding dropped, an unknown run shown as ``⁇``."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} outside vocabulary of size {self.vocab_size}")
            if i != self.pad_id:
                out.append(i)
        return self._sp.decode(out)

    def surface(self, token_id: int) -> str:
        """The text of one id, a word-initial piece with its leading space."""
        return self.tokens[int(token_id)].replace(_WORD_START, " ")

    def save(self, directory: str | Path) -> None:
        """``bpe.model`` and the readable ``tokens.txt`` (one piece a line, in id order)."""
        directory = Path(directory)
        with atomic_path(directory / MODEL_FILE) as tmp:
            tmp.write_bytes(self.model_proto)
        write_text_atomic(directory / TOKENS_FILE, "".join(f"{t}\n" for t in self.tokens))

    @classmethod
    def load(cls, directory: str | Path) -> SentencePieceUnits:
        path = Path(directory) / MODEL_FILE
        return cls(path.read_bytes(), str(path))


TextUnits = CharTokenizer | SentencePieceUnits


def save_text_units(units: TextUnits, directory: str | Path) -> None:
    """A model directory's text units: ``tokens.txt`` (characters) or ``bpe.model`` too."""
    if isinstance(units, SentencePieceUnits):
        units.save(directory)
    else:
        units.save(Path(directory) / TOKENS_FILE)


def load_text_units(directory: str | Path) -> TextUnits:
    """What ``save_text_units`` wrote into ``directory``."""
    directory = Path(directory)
    if (directory / MODEL_FILE).exists():
        return SentencePieceUnits.load(directory)
    return CharTokenizer.load(directory / TOKENS_FILE)


def text_digest(texts: Iterable[str]) -> str:
    """SHA-256 of the texts in order, recorded so a changed training text re-makes the list."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\n")
    return digest.hexdigest()


def make_token_list(
    conf: TokenListConfig, texts: list[str], out_dir: str | Path, source: str
) -> bool:
    """Write the stage-2 token list of ``texts`` (from ``source``) into ``out_dir``: its
    resolved ``config.yaml`` (with the text's digest) and, for ``bpe``, ``bpe.model`` and
    ``tokens.txt``. Returns False, writing nothing, when ``out_dir`` already holds the list of
    the same config and text, so its files (and whatever was made from them) stay as they are."""
    out_dir = Path(out_dir)
    record = {**to_mapping(conf), "text": source, "text_sha256": text_digest(texts)}
    config_path = out_dir / CONFIG_FILE
    if config_path.exists() and yaml.safe_load(config_path.read_text(encoding="utf-8")) == record:
        return False
    config_path.unlink(missing_ok=True)  # a list half-replaced is never taken as up to date
    for stale in (MODEL_FILE, TOKENS_FILE):
        (out_dir / stale).unlink(missing_ok=True)
    if conf.token_type == "bpe":
        try:
            units = SentencePieceUnits.train(texts, conf)
        except RuntimeError as err:
            raise ValueError(f"{source}: sentencepiece with nbpe={conf.nbpe}: {err}") from err
        units.save(out_dir)
    write_text_atomic(config_path, yaml.safe_dump(record, sort_keys=False))
    return True


def read_token_list(directory: str | Path) -> SentencePieceUnits | None:
    """The shared units of a stage-2 token list: its sentencepiece model, or None for
    ``char`` (each model then takes the characters of its own training text)."""
    config_path = Path(directory) / CONFIG_FILE
    if not config_path.exists():
        raise FileNotFoundError(f"{config_path}: no token list here (stage 2 writes it)")
    data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("token_type") not in ("char", "bpe"):
        raise ValueError(f"{config_path}: token_type must be char or bpe")
    return SentencePieceUnits.load(directory) if data["token_type"] == "bpe" else None


def units_for(token_list: str | Path | None, texts: Iterable[str]) -> TextUnits:
    """The units a model trains with: the stage-2 sentencepiece model of ``token_list``, or the
    characters of ``texts`` (the model's own, normalised as it reads them) for ``char`` or
    without a token list."""
    shared = read_token_list(token_list) if token_list is not None else None
    return shared if shared is not None else CharTokenizer.build(texts)
