"""One interface for every reward that reads an attention encoder–decoder ASR.

A backend supplies four primitives (encode audio, run the teacher-forced decoder returning
logits and cross-attention, text <-> ids, the decoder prefix); this base class builds from them
batched transcription, the Llasa-GRPO NLL of a reference text, and the W3AR cross-attention
matrices. Backends: ESPnet2 (``espnet_asr.py``) and Hugging Face Whisper (``whisper_asr.py``).
"""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class CrossAttention:
    """Decoder cross-attention of one (audio, reference text) pair.

    Row ``t`` is the attention of the decoder step that predicts reference token ``t``
    (the final end-of-sentence step is left out); columns are the valid encoder frames.
    """

    tokens: list[str]
    word_index: np.ndarray
    weights: np.ndarray
    frame_shift_s: float


@dataclass(frozen=True)
class HeadAttention:
    """Decoder cross-attention of one (audio, reference text) pair, head by head.

    Kept per ``(layer, head)`` because only some heads of an ASR align text with audio: W3AR
    picks those (``local_lib.bin.select_attention_heads``) and averages them alone. Rows are as
    in :class:`CrossAttention`, cut to the valid frames but not renormalised, so averaging heads
    and renormalising once gives what ``RewardASR.cross_attention`` gives for the same heads.
    """

    tokens: list[str]
    word_index: np.ndarray
    heads: list[tuple[int, int]]  # (layer, head) of each ``weights[p]``
    weights: np.ndarray  # float32 [len(heads), n_tokens, n_frames]
    frame_shift_s: float

    def per_head(self) -> np.ndarray:
        """Each head's rows renormalised over the valid frames: ``[heads, n_tokens, n_frames]``."""
        return _normalised_rows(self.weights)

    def mean(self) -> np.ndarray:
        """The heads' mean, rows renormalised over the valid frames: ``[n_tokens, n_frames]``."""
        return _normalised_rows(self.weights.mean(axis=0))


def _normalised_rows(weights: np.ndarray) -> np.ndarray:
    return weights / np.maximum(weights.sum(axis=-1, keepdims=True), 1e-12)


def word_index_of(pieces: Sequence[str]) -> np.ndarray:
    """Word number of each token piece: a piece starting with a space opens a new word,
    a piece that is only space (or empty, a special token) belongs to none (-1)."""
    out, word, open_word = [], -1, False
    for piece in pieces:
        if not piece.strip():
            out.append(-1)
            open_word = open_word and piece == ""
            continue
        if piece[0].isspace() or not open_word:
            word += 1
        open_word = True
        out.append(word)
    return np.asarray(out, dtype=np.int64)


class RewardASR(ABC):
    """Batched transcription, teacher-forced NLL and cross-attention over one ASR."""

    sample_rate: int = 16000
    frame_shift_s: float
    eos_id: int

    @abstractmethod
    def encode(self, wavs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output ``[B, T, D]`` and the number of valid frames ``[B]``."""

    @abstractmethod
    def decoder_forward(
        self,
        memory: torch.Tensor,
        memory_lens: torch.Tensor,
        tokens: torch.Tensor,
        token_lens: torch.Tensor,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits ``[B, L, V]`` for decoder inputs ``tokens`` and the cross-attention of every
        layer, each ``[B, H, L, T]``."""

    @abstractmethod
    def prefix_ids(self) -> list[int]:
        """Decoder inputs before the first text token (sos, or Whisper's task tokens)."""

    @abstractmethod
    def text_to_ids(self, text: str) -> list[int]:
        """Reference text as the ASR's output units."""

    @abstractmethod
    def token_pieces(self, ids: Sequence[int]) -> list[str]:
        """Surface text of each id (a word-initial piece starts with a space)."""

    def ids_to_text(self, ids: Sequence[int]) -> str:
        return " ".join("".join(self.token_pieces(ids)).split())

    def _teacher_forced(self, wavs: Sequence[np.ndarray], texts: Sequence[str]):
        if len(wavs) != len(texts):
            raise ValueError(f"got {len(wavs)} waveforms but {len(texts)} texts")
        prefix = self.prefix_ids()
        ids = [self.text_to_ids(t) for t in texts]
        lens = torch.tensor([len(prefix) + len(i) for i in ids])
        batch = torch.full((len(ids), int(lens.max())), self.eos_id, dtype=torch.long)
        targets = torch.full_like(batch, -1)
        for b, seq in enumerate(ids):
            batch[b, : lens[b]] = torch.tensor(prefix + seq, dtype=torch.long)
            # Output at position p predicts input p + 1; the last valid one predicts eos.
            targets[b, len(prefix) - 1 : lens[b]] = torch.tensor(
                seq + [self.eos_id], dtype=torch.long
            )
        memory, memory_lens = self.encode(wavs)
        logits, attn = self.decoder_forward(memory, memory_lens, batch, lens)
        return ids, logits, attn, targets.to(logits.device), memory_lens

    def nll(
        self, wavs: Sequence[np.ndarray], texts: Sequence[str], reduction: str = "mean"
    ) -> torch.Tensor:
        """Cross-entropy of each reference text (its tokens plus end-of-sentence) under the
        ASR, teacher-forced on the audio: ``[B]``, per-token mean or sum. Differentiable."""
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        _, logits, _, targets, _ = self._teacher_forced(wavs, texts)
        valid = targets >= 0
        logp = torch.log_softmax(logits.float(), dim=-1)
        token_nll = -logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * valid
        total = token_nll.sum(dim=1)
        return total / valid.sum(dim=1) if reduction == "mean" else total

    @torch.no_grad()
    def cross_attention(
        self,
        wavs: Sequence[np.ndarray],
        texts: Sequence[str],
        layers: Sequence[int] | None = None,
        heads: Sequence[int] | None = None,
    ) -> list[CrossAttention]:
        """Cross-attention averaged over the chosen layers and heads (all when None), each row
        renormalised over the utterance's valid frames."""
        ids, _, attn, _, memory_lens = self._teacher_forced(wavs, texts)
        chosen = [attn[i] for i in (range(len(attn)) if layers is None else layers)]
        stacked = torch.stack(chosen)  # [layers, B, H, L, T]
        if heads is not None:
            stacked = stacked[:, :, list(heads)]
        mean = stacked.float().mean(dim=(0, 2))  # [B, L, T]
        start = len(self.prefix_ids()) - 1
        out = []
        for b, seq in enumerate(ids):
            rows = mean[b, start : start + len(seq), : int(memory_lens[b])]
            rows = rows / rows.sum(dim=-1, keepdim=True).clamp(min=1e-12)
            pieces = self.token_pieces(seq)
            out.append(
                CrossAttention(
                    pieces, word_index_of(pieces), rows.cpu().numpy(), self.frame_shift_s
                )
            )
        return out

    @torch.no_grad()
    def head_attention(
        self,
        wavs: Sequence[np.ndarray],
        texts: Sequence[str],
        heads: Sequence[tuple[int, int]] | None = None,
    ) -> list[HeadAttention]:
        """Cross-attention of the given ``(layer, head)`` pairs (every head of every layer, layer
        by layer, when None), one :class:`HeadAttention` per pair of audio and text."""
        ids, _, attn, _, memory_lens = self._teacher_forced(wavs, texts)
        if heads is None:
            heads = [(layer, h) for layer, a in enumerate(attn) for h in range(a.shape[1])]
        heads = [(int(layer), int(h)) for layer, h in heads]
        for layer, h in heads:
            if not (0 <= layer < len(attn) and 0 <= h < attn[0].shape[1]):
                raise ValueError(
                    f"head ({layer}, {h}) does not exist: the ASR has {len(attn)} decoder "
                    f"layers of {attn[0].shape[1]} heads"
                )
        chosen = torch.stack([attn[layer][:, h] for layer, h in heads], dim=1).float()
        start = len(self.prefix_ids()) - 1
        out = []
        for b, seq in enumerate(ids):
            rows = chosen[b, :, start : start + len(seq), : int(memory_lens[b])]
            pieces = self.token_pieces(seq)
            out.append(
                HeadAttention(
                    pieces, word_index_of(pieces), heads, rows.cpu().numpy(), self.frame_shift_s
                )
            )
        return out

    @torch.no_grad()
    def transcribe(self, wavs: Sequence[np.ndarray], max_len: int | None = None) -> list[str]:
        """Greedy attention decoding, batched; stops at end-of-sentence or ``max_len`` tokens
        (default: the number of encoder frames, enough for any sensible output)."""
        memory, memory_lens = self.encode(wavs)
        limit = int(memory_lens.max()) if max_len is None else max_len
        prefix = self.prefix_ids()
        tokens = torch.tensor([prefix] * len(wavs), dtype=torch.long, device=memory.device)
        done = torch.zeros(len(wavs), dtype=torch.bool, device=memory.device)
        for _ in range(limit):
            lens = torch.full((len(wavs),), tokens.shape[1], device=memory.device)
            logits, _ = self.decoder_forward(memory, memory_lens, tokens, lens)
            nxt = logits[:, -1].argmax(dim=-1)
            nxt = torch.where(done, torch.full_like(nxt, self.eos_id), nxt)
            done |= nxt == self.eos_id
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            if done.all():
                break
        texts = []
        for row in tokens[:, len(prefix) :].tolist():
            row = row[: row.index(self.eos_id)] if self.eos_id in row else row
            texts.append(self.ids_to_text(row))
        return texts
