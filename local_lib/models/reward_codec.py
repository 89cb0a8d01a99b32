"""The reward codec: HPRO's reward model, speech tokens split into content and style codes
(docs/methods.md#hpro).

HPRO rewards content and emotion separately, so its reward model keeps them apart: the token
embeddings feed two encoders, *content* and *style*, each ending in a small finite scalar
quantiser (FSQ) whose few levels limit what the stream can carry. The codes of both streams
rebuild the input tokens (the content codes modulated by the style codes, FiLM), and heads read
one stream each:

- content: a CTC text decoder over the text units of ``AsrUnits`` (``upsample`` outputs per
  token, since CTC needs a frame per unit);
- style: the sentence emotion classifier over the mean of the utterance's frames, and the word
  head, ``word_dims`` prosody dimensions per word from the mean over the word's tokens.

The frame codes of both streams are what HPRO's frame terms compare. A soft token (a
distribution over the speech tokens) enters as ``probs @ E``, as in DiffRO's Token2Text, so
the codec's scores reach the policy through the soft tokens.

Word spans are token ranges ``[start, end)``, found by CTC forced alignment of the text to the
content decoder's output on the *reference* tokens (``RewardCodec.word_spans``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from local_lib.align.ctc_align import ctc_forced_align
from local_lib.models.asr_units import AsrUnits
from local_lib.models.evaluator_nets import frame_mask
from local_lib.models.evaluators import ctc_greedy
from local_lib.models.token2text import ctc_min_frames, residual_blocks, soft_embedding

CHECKPOINT_KIND = "reward_codec"


@dataclass(frozen=True)
class RewardCodecConfig:
    """The ``model:`` section of conf/reward_codec*.yaml."""

    embed_dim: int = 128  # width of the speech-token embedding table E
    channels: int = 160
    encoder_layers: int = 4  # residual conv blocks of each stream's encoder
    head_layers: int = 2  # residual conv blocks of the decoder, the text head and the style trunk
    kernel_size: int = 5
    content_levels: tuple[int, ...] = (5, 5, 5, 5, 5, 5)  # FSQ levels per content dimension
    style_levels: tuple[int, ...] = (5, 5, 5)  # FSQ levels per style dimension
    upsample: int = 2  # CTC frames per speech token
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("embed_dim", "channels", "upsample"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.encoder_layers < 0 or self.head_layers < 0:
            raise ValueError("encoder_layers and head_layers must be >= 0")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        FSQ.check_levels(self.content_levels)
        FSQ.check_levels(self.style_levels)


class FSQ(nn.Module):
    """Finite scalar quantisation: dimension ``i`` is squashed to ``(L_i - 1)/2 · tanh(z)``,
    rounded to one of ``L_i`` integers and scaled back to [-1, 1]; the rounding passes the
    gradient straight through. Odd ``L_i`` only, so 0 is a level and no offset is needed."""

    def __init__(self, levels: Sequence[int]) -> None:
        super().__init__()
        self.check_levels(levels)
        self.levels = tuple(levels)
        self.register_buffer("half_width", torch.tensor([(n - 1) / 2 for n in levels]))

    @staticmethod
    def check_levels(levels: Sequence[int]) -> None:
        if not levels or any(n < 3 or n % 2 == 0 for n in levels):
            raise ValueError(f"FSQ levels must be odd integers >= 3, got {tuple(levels)}")

    @property
    def dim(self) -> int:
        return len(self.levels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``[..., dim]`` -> codes in [-1, 1], each dimension on its grid of ``L_i`` values."""
        bounded = torch.tanh(z) * self.half_width
        rounded = bounded + (torch.round(bounded) - bounded).detach()
        return rounded / self.half_width


class _Stack(nn.Module):
    """Linear projection to ``channels`` then residual conv blocks, padding kept at zero."""

    def __init__(self, dim_in: int, cfg: RewardCodecConfig, layers: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, cfg.channels)
        self.blocks = residual_blocks(cfg.channels, cfg.kernel_size, cfg.dropout, layers)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        x = self.proj(x) * keep
        for block in self.blocks:
            x = block(x, keep)
        return x


@dataclass(frozen=True)
class RewardCodecOutput:
    """What the codec makes of a batch of ``B`` token sequences of up to ``T`` tokens."""

    content: torch.Tensor  # [B, T, Dc] content codes
    style: torch.Tensor  # [B, T, Ds] style codes
    lens: torch.Tensor  # [B] tokens per row
    recon_logits: torch.Tensor  # [B, T, S] the input tokens rebuilt from both streams
    text_log_probs: torch.Tensor  # [B, T * upsample, units] CTC log-probs (content)
    frame_lens: torch.Tensor  # [B] CTC frames per row (tokens x upsample)
    emotion_logits: torch.Tensor  # [B, emotions] (style)
    style_hidden: torch.Tensor  # [B, T, C] the style trunk the emotion and word heads read
    word_dims: torch.Tensor | None  # [B, W, word_dims] (style); None without word spans

    @property
    def mask(self) -> torch.Tensor:
        """[B, T] True on real tokens."""
        return frame_mask(self.lens, self.content.shape[1])


def span_weights(spans: torch.Tensor, length: int) -> torch.Tensor:
    """``[B, W, 2]`` token ranges -> ``[B, W, T]`` averaging weights (a row of zeros for an
    empty or padding span, marked ``end <= start``)."""
    t = torch.arange(length, device=spans.device)
    inside = (t >= spans[..., :1]) & (t < spans[..., 1:])
    return inside.float() / inside.sum(dim=-1, keepdim=True).clamp(min=1)


class RewardCodecNet(nn.Module):
    """Embedding table, the two streams with their quantisers, the FiLM decoder and the heads."""

    def __init__(
        self,
        cfg: RewardCodecConfig,
        num_speech_tokens: int,
        num_units: int,
        num_emotions: int,
        word_dims: int,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(num_speech_tokens, cfg.embed_dim)
        self.content_fsq, self.style_fsq = FSQ(cfg.content_levels), FSQ(cfg.style_levels)
        dc, ds, c = self.content_fsq.dim, self.style_fsq.dim, cfg.channels
        self.content_enc = _Stack(cfg.embed_dim, cfg, cfg.encoder_layers)
        self.content_out = nn.Linear(c, dc)
        self.style_enc = _Stack(cfg.embed_dim, cfg, cfg.encoder_layers)
        self.style_out = nn.Linear(c, ds)
        self.decoder_in = nn.Linear(dc, c)
        self.film = nn.Linear(ds, 2 * c)
        self.decoder = _Stack(c, cfg, cfg.head_layers)
        self.recon = nn.Linear(c, num_speech_tokens)
        self.text_trunk = _Stack(dc, cfg, cfg.head_layers)
        self.text_head = nn.Linear(c, cfg.upsample * num_units)
        self.style_trunk = _Stack(ds, cfg, cfg.head_layers)
        self.emotion_head = nn.Linear(c, num_emotions)
        self.word_head = nn.Linear(c, word_dims)

    @property
    def num_speech_tokens(self) -> int:
        return self.embed.num_embeddings

    def embed_probs(self, probs: torch.Tensor) -> torch.Tensor:
        """``[B, T, S]`` distributions over the speech tokens -> ``[B, T, d]`` as ``probs @ E``."""
        return soft_embedding(self.embed, probs)

    def forward(
        self, emb: torch.Tensor, lens: torch.Tensor, spans: torch.Tensor | None = None
    ) -> RewardCodecOutput:
        """``emb`` ``[B, T, d]`` token embeddings, ``lens`` tokens per row, ``spans`` optional
        ``[B, W, 2]`` word token ranges (see ``span_weights``)."""
        lens = lens.to(emb.device)
        keep = frame_mask(lens, emb.shape[1]).unsqueeze(-1).to(emb.dtype)
        content = self.content_fsq(self.content_out(self.content_enc(emb, keep))) * keep
        style = self.style_fsq(self.style_out(self.style_enc(emb, keep))) * keep
        gamma, shift = self.film(style).chunk(2, dim=-1)
        fused = (self.decoder_in(content) * (1 + gamma) + shift) * keep
        recon = self.recon(self.decoder(fused, keep))
        text = self.text_head(self.text_trunk(content, keep))
        batch, length = text.shape[:2]
        text = text.reshape(batch, length * self.cfg.upsample, -1)
        hidden = self.style_trunk(style, keep)
        pooled = hidden.sum(dim=1) / lens.clamp(min=1)[:, None].to(hidden.dtype)
        words = None if spans is None else self.pool_words(hidden, spans)
        return RewardCodecOutput(
            content, style, lens, recon, torch.log_softmax(text, dim=-1),
            lens * self.cfg.upsample, self.emotion_head(pooled), hidden, words,
        )  # fmt: skip

    def pool_words(self, style_hidden: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        """``[B, W, word_dims]``: the word head on the style trunk averaged over each word's
        tokens (spans found after the forward pass, e.g. from its own text head, need no
        second pass)."""
        weights = span_weights(spans.to(style_hidden.device), style_hidden.shape[1])
        return self.word_head(weights.to(style_hidden.dtype) @ style_hidden)


def word_units(units: AsrUnits, text: str) -> tuple[list[int], list[int]]:
    """The text's unit ids and the word of each (0, 1, ...; -1 for a space between words):
    a unit starts a word after a space or when its surface begins with one (sentencepiece)."""
    ids = units.encode(text)
    words, word, in_word = [], -1, False
    for piece in units.pieces(ids):
        if piece and piece.isspace():
            words.append(-1)
            in_word = False
            continue
        if piece.startswith(" ") or not in_word:
            word, in_word = word + 1, True
        words.append(word)
    return ids, words


def proportional_spans(words: Sequence[int], num_tokens: int) -> list[tuple[int, int]]:
    """Token ranges of the words when the tokens are shared out by text units (the fallback for
    a text its tokens cannot hold under CTC): each word at least one token."""
    n_chars, count = len(words), max(words, default=-1) + 1
    spans = []
    for w in range(count):
        chars = [i for i, x in enumerate(words) if x == w]
        start = min(chars[0] * num_tokens // n_chars, num_tokens - 1)
        end = max(start + 1, math.ceil((chars[-1] + 1) * num_tokens / n_chars))
        spans.append((start, min(end, num_tokens)))
    return spans


def pad_spans(rows: Sequence[Sequence[tuple[int, int]]]) -> torch.Tensor:
    """``[B, W, 2]`` long, padding spans ``(0, 0)`` (empty)."""
    out = torch.zeros(len(rows), max((len(r) for r in rows), default=0), 2, dtype=torch.long)
    for b, row in enumerate(rows):
        if row:
            out[b, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


class RewardCodec:
    """The network with its text units and emotion classes, as a checkpoint stores them."""

    def __init__(
        self, net: RewardCodecNet, units: AsrUnits, emotions: Sequence[str], word_dims: int
    ) -> None:
        if net.emotion_head.out_features != len(emotions):
            raise ValueError(
                f"{len(emotions)} emotions for a head of {net.emotion_head.out_features}"
            )
        self.net, self.units, self.emotions = net, units, list(emotions)
        self.word_dims = word_dims

    @classmethod
    def build(
        cls,
        cfg: RewardCodecConfig,
        num_speech_tokens: int,
        units: AsrUnits,
        emotions: Sequence[str],
        word_dims: int,
    ) -> RewardCodec:
        """A fresh model (weights from the global torch RNG)."""
        net = RewardCodecNet(cfg, num_speech_tokens, units.size, len(emotions), word_dims)
        return cls(net, units, emotions, word_dims)

    def state(self) -> dict:
        """The checkpoint dict: everything ``from_state`` needs, weights included."""
        return {
            "kind": CHECKPOINT_KIND,
            "config": dataclasses.asdict(self.net.cfg),
            "num_speech_tokens": self.net.num_speech_tokens,
            **self.units.state(),
            "emotions": self.emotions,
            "word_dims": self.word_dims,
            "model": self.net.state_dict(),
        }

    @classmethod
    def from_state(cls, state: Mapping) -> RewardCodec:
        cfg = dict(state["config"])
        cfg["content_levels"] = tuple(cfg["content_levels"])
        cfg["style_levels"] = tuple(cfg["style_levels"])
        model = cls.build(
            RewardCodecConfig(**cfg),
            int(state["num_speech_tokens"]),
            AsrUnits.from_state(state),
            state["emotions"],
            int(state["word_dims"]),
        )
        model.net.load_state_dict(state["model"])
        model.net.eval()
        return model

    @property
    def device(self) -> torch.device:
        return self.net.embed.weight.device

    def pad_ids(self, tokens: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ``[B, T]`` ids and ``[B]`` lengths on the codec's device."""
        lens = torch.tensor([len(t) for t in tokens], dtype=torch.long)
        ids = torch.zeros(len(tokens), max(int(lens.max()), 1), dtype=torch.long)
        for row, seq in enumerate(tokens):
            ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        return ids.to(self.device), lens.to(self.device)

    def run_ids(
        self, tokens: Sequence[Sequence[int]], spans: torch.Tensor | None = None
    ) -> RewardCodecOutput:
        """The network on hard speech-token sequences."""
        ids, lens = self.pad_ids(tokens)
        return self.net(self.net.embed(ids), lens, spans)

    def run_probs(
        self, probs: torch.Tensor, lens: torch.Tensor, spans: torch.Tensor | None = None
    ) -> RewardCodecOutput:
        """The network on soft tokens ``[B, T, S]`` (rows past ``lens`` are ignored)."""
        return self.net(self.net.embed_probs(probs), lens, spans)

    def text_nll(self, out: RewardCodecOutput, texts: Sequence[str]) -> torch.Tensor:
        """``[B]`` CTC ``-log P(text | tokens)`` per unit of the text, from the content stream.
        A text its frames cannot hold is an error: the codec would score it as impossible."""
        ids = [self.units.encode(t) for t in texts]
        device = out.text_log_probs.device
        frames = out.frame_lens
        short = [k for k, i in enumerate(ids) if not i or ctc_min_frames(i) > int(frames[k])]
        if short:
            k = short[0]
            raise ValueError(f"reward codec: {texts[k]!r} does not fit {int(frames[k])} frames")
        n_units = torch.tensor([len(i) for i in ids], device=device)
        nll = nn.functional.ctc_loss(
            out.text_log_probs.transpose(0, 1),
            torch.tensor([u for i in ids for u in i], device=device),
            frames, n_units, blank=self.units.blank_id, reduction="none",
        )  # fmt: skip
        return nll / n_units.to(nll.dtype)

    @torch.no_grad()
    def word_spans(self, out: RewardCodecOutput, texts: Sequence[str]) -> torch.Tensor:
        """``[B, W, 2]`` token ranges of each text's words: the CTC forced alignment of the text
        to the content decoder's output (the reference tokens' output, so generated and
        reference words share spans); a text its frames cannot hold gets its tokens shared out
        by text units."""
        log_probs = out.text_log_probs.float().cpu().numpy()
        frames = out.frame_lens.cpu().numpy()
        up = self.net.cfg.upsample
        rows = []
        for b, text in enumerate(texts):
            ids, words = word_units(self.units, text)
            n_tokens = int(out.lens[b])
            spans = proportional_spans(words, n_tokens)
            if ids and ctc_min_frames(ids) <= frames[b]:
                align = ctc_forced_align(
                    log_probs[b : b + 1], frames[b : b + 1], np.array([ids]), np.array([len(ids)]),
                    self.units.blank_id,
                )  # fmt: skip
                spans = _aligned_spans(align.token_start[0], align.token_end[0], words, up)
            rows.append(spans)
        return pad_spans(rows)

    def transcripts(self, out: RewardCodecOutput) -> list[str]:
        """Greedy CTC transcripts of the content decoder."""
        ids = ctc_greedy(out.text_log_probs, out.frame_lens, self.units.blank_id)
        return [self.units.decode(row) for row in ids]

    def emotion_index(self, labels: Sequence[str]) -> torch.Tensor:
        """``[B]`` class indices; an emotion the head never saw is an error."""
        unknown = sorted({x for x in labels if x not in self.emotions})
        if unknown:
            raise ValueError(f"reward codec: emotion(s) {unknown} not among {self.emotions}")
        return torch.tensor([self.emotions.index(x) for x in labels], device=self.device)

    def predicted_emotions(self, out: RewardCodecOutput) -> list[str]:
        return [self.emotions[i] for i in out.emotion_logits.argmax(dim=-1).tolist()]


def _aligned_spans(
    start: np.ndarray, end: np.ndarray, words: Sequence[int], upsample: int
) -> list[tuple[int, int]]:
    """Word token ranges from the CTC frames of its units (``upsample`` frames a token)."""
    spans = []
    for w in range(max(words, default=-1) + 1):
        chars = [i for i, x in enumerate(words) if x == w]
        first, last = int(start[chars[0]]), int(end[chars[-1]])
        spans.append((first // upsample, max(first // upsample + 1, -(-last // upsample))))
    return spans


def load_reward_codec(path: str | Path) -> RewardCodec:
    """A reward codec checkpoint written by ``local_lib.bin.train_reward_codec``, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: reward codec checkpoint not found")
    state = torch.load(path, map_location="cpu", weights_only=False)
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind != CHECKPOINT_KIND:
        raise ValueError(f"{path}: not a reward codec checkpoint (kind={kind!r})")
    return RewardCodec.from_state(state)
