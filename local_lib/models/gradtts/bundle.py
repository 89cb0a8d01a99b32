"""A trained Grad-TTS as one file: weights plus everything needed to use them.

Stage 4 writes ``exp/tts_base/model.pt`` and stage 5 writes ``exp/tts_<system>/model.pt`` in this
format; synthesis, EASPO and the plots read it back with ``load_gradtts(path)``. The file carries
the architecture config, the character vocabulary and the ordered speaker and emotion lists,
because embedding ids are meaningless without them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from local_lib.atomic_io import torch_save_atomic
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.gradtts.config import GradTTSConfig
from local_lib.models.gradtts.model import GradTTS

FORMAT = "gradtts-v1"


@dataclass
class GradTTSBundle:
    """A Grad-TTS model with its vocabulary and the names behind its speaker/emotion ids."""

    model: GradTTS
    tokenizer: CharTokenizer
    speakers: list[str]
    emotions: list[str]

    def __post_init__(self) -> None:
        sizes = (self.tokenizer.vocab_size, len(self.speakers), len(self.emotions))
        expected = (self.model.vocab_size, self.model.n_speakers, self.model.n_emotions)
        if sizes != expected:
            raise ValueError(
                f"vocabulary/speaker/emotion sizes {sizes} do not match the model's {expected}"
            )

    def speaker_id(self, speaker: str) -> int:
        """Embedding id of a speaker; an unseen one is an error, never a silent default."""
        return _index(self.speakers, speaker, "speaker")

    def emotion_id(self, emotion: str) -> int:
        return _index(self.emotions, emotion, "emotion")

    def encode_texts(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """Padded character ids ``[B, T]`` and lengths ``[B]`` (an empty text is an error)."""
        ids = [self.tokenizer.encode(t) for t in texts]
        empty = [t for t, i in zip(texts, ids, strict=True) if not i]
        if empty:
            raise ValueError(f"texts with no characters after normalisation: {empty}")
        text = torch.zeros(len(ids), max(len(i) for i in ids), dtype=torch.long)
        for row, seq in enumerate(ids):
            text[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        return text, torch.tensor([len(i) for i in ids], dtype=torch.long)

    def save(self, path: str | Path) -> None:
        """Write the bundle atomically, so a killed job never leaves a file a re-run trusts."""
        torch_save_atomic(
            {
                "format": FORMAT,
                "config": dataclasses.asdict(self.model.cfg),
                "tokens": self.tokenizer.tokens,
                "speakers": list(self.speakers),
                "emotions": list(self.emotions),
                "state_dict": self.model.state_dict(),
            },
            Path(path),
        )


def load_gradtts(path: str | Path, device: str | torch.device = "cpu") -> GradTTSBundle:
    """Read a bundle written by ``GradTTSBundle.save``; the model comes back in eval mode."""
    path = Path(path)
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise ValueError(f"{path}: cannot read a Grad-TTS model file: {err}") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a Grad-TTS model file (expected format {FORMAT})")
    conf = {k: tuple(v) if isinstance(v, list) else v for k, v in data["config"].items()}
    cfg = GradTTSConfig(**conf)
    tokenizer = CharTokenizer(data["tokens"])
    model = GradTTS(cfg, tokenizer.vocab_size, len(data["speakers"]), len(data["emotions"]))
    model.load_state_dict(data["state_dict"])
    model.to(device).eval()
    return GradTTSBundle(model, tokenizer, list(data["speakers"]), list(data["emotions"]))


def _index(names: list[str], name: str, kind: str) -> int:
    try:
        return names.index(name)
    except ValueError:
        raise ValueError(f"unknown {kind} {name!r}; the model knows {names}") from None
