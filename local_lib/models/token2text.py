"""Token2Text: DiffRO's reward model, an ASR that reads speech tokens (docs/methods.md#diffro).

DiffRO scores the policy's *soft* tokens, so its reward model must read tokens rather than
audio: the front end is an embedding table ``E`` over the speech tokens, and a soft token
``ỹ`` (a distribution over them) enters as ``ỹ @ E``, which equals ``E[y]`` when ``ỹ`` is the
one-hot of ``y``. Behind it, a small convolutional encoder (the evaluator ASR's choice: on the
mini corpora convolutions train in CPU minutes and generalise better than attention) feeds

- a CTC head over the characters of ``AsrUnits``: the text reward is ``log P_ctc(text | ỹ)``
  divided by the number of units of the text (**[ours]**: per unit, as the GRPO recipe's CTC
  NLL reward, so long and short texts weigh alike and the scale sits near the label terms),
  and greedy decoding gives the model's own transcript (its dev WER, the WER it sees on
  rollouts);
- the multi-task reward (MTR) heads: one linear classifier per utterance label of the corpus
  (speaker, emotion, gender, ...) over the mean-pooled encoder output, each giving
  ``log P(label | ỹ)``.

Encoder frames are the speech tokens repeated ``upsample`` times: CTC needs a frame per
character (two for a doubled one), and the 31 Hz tokens of the mini tokenizer carry little
more than two per character. A text its frames cannot hold has probability 0; its reward is
then the constant ``INFEASIBLE_LOGP`` (no gradient) and it is counted, not hidden.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from local_lib.models.asr_units import AsrUnits
from local_lib.models.evaluator_nets import frame_mask
from local_lib.models.evaluators import ctc_greedy

CHECKPOINT_KIND = "token2text"
# per-unit log P of a text the frames are too few for (a plain CTC score would be -inf)
INFEASIBLE_LOGP = -30.0


@dataclass(frozen=True)
class Token2TextConfig:
    """The ``model:`` section of conf/token2text*.yaml."""

    embed_dim: int = 128  # width of the speech-token embedding table E
    channels: int = 192
    conv_layers: int = 6  # residual blocks, dilations 1, 2, 4, 1, 2, 4, ...
    kernel_size: int = 5
    upsample: int = 2  # encoder frames per speech token
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("embed_dim", "channels", "upsample"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.conv_layers < 0:
            raise ValueError(f"conv_layers must be >= 0, got {self.conv_layers}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class ResidualBlock(nn.Module):
    """Dilated conv, LayerNorm, GELU, dropout, residual; padded frames are zeroed after it, so
    an utterance scores the same whatever it is batched with. LayerNorm rather than BatchNorm:
    soft tokens are not the inputs batch statistics were gathered on."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=padding, dilation=dilation)
        self.norm = nn.LayerNorm(channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, T, C]``, ``keep`` ``[B, T, 1]``."""
        y = self.conv(x.transpose(1, 2)).transpose(1, 2)
        return (x + self.drop(nn.functional.gelu(self.norm(y)))) * keep


def soft_embedding(embed: nn.Embedding, probs: torch.Tensor) -> torch.Tensor:
    """``[B, T, S]`` distributions over an embedding table's S entries -> ``probs @ E``, so a
    reward model reads soft tokens (Token2Text, the reward codec)."""
    if probs.shape[-1] != embed.num_embeddings:
        raise ValueError(
            f"soft tokens over {probs.shape[-1]} speech tokens; the model has "
            f"{embed.num_embeddings}"
        )
    return probs.to(embed.weight.dtype) @ embed.weight


def residual_blocks(channels: int, kernel_size: int, dropout: float, layers: int) -> nn.ModuleList:
    """``layers`` residual blocks with dilations cycling 1, 2, 4 (Token2Text's and the reward
    codec's encoders)."""
    return nn.ModuleList(
        ResidualBlock(channels, kernel_size, (1, 2, 4)[i % 3], dropout) for i in range(layers)
    )


@dataclass(frozen=True)
class Token2TextOutput:
    """What the encoder makes of a batch: CTC log-probs per frame and the label heads' logits."""

    log_probs: torch.Tensor  # [B, T', units]
    frame_lens: torch.Tensor  # [B] valid frames (speech tokens x upsample)
    head_logits: dict[str, torch.Tensor]  # label name -> [B, classes]


class Token2TextNet(nn.Module):
    """Embedding table, conv encoder, CTC head and one utterance head per label."""

    def __init__(
        self,
        cfg: Token2TextConfig,
        num_speech_tokens: int,
        num_units: int,
        head_sizes: Mapping[str, int],
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(num_speech_tokens, cfg.embed_dim)
        self.proj = nn.Linear(cfg.embed_dim, cfg.channels)
        self.blocks = residual_blocks(cfg.channels, cfg.kernel_size, cfg.dropout, cfg.conv_layers)
        self.ctc = nn.Linear(cfg.channels, num_units)
        self.heads = nn.ModuleDict({k: nn.Linear(cfg.channels, n) for k, n in head_sizes.items()})

    @property
    def num_speech_tokens(self) -> int:
        return self.embed.num_embeddings

    def embed_probs(self, probs: torch.Tensor) -> torch.Tensor:
        """``[B, T, S]`` distributions over the speech tokens -> ``[B, T, d]`` as ``probs @ E``."""
        return soft_embedding(self.embed, probs)

    def forward(self, emb: torch.Tensor, lens: torch.Tensor) -> Token2TextOutput:
        """``emb`` ``[B, T, d]`` token embeddings (``embed`` or ``embed_probs``), ``lens`` the
        speech tokens of each row."""
        up = self.cfg.upsample
        frame_lens = lens.to(emb.device) * up
        keep = frame_mask(frame_lens, emb.shape[1] * up).unsqueeze(-1).to(emb.dtype)
        x = self.proj(emb.repeat_interleave(up, dim=1)) * keep
        for block in self.blocks:
            x = block(x, keep)
        log_probs = torch.log_softmax(self.ctc(x), dim=-1)
        pooled = x.sum(dim=1) / frame_lens.clamp(min=1)[:, None].to(x.dtype)
        heads = {name: head(pooled) for name, head in self.heads.items()}
        return Token2TextOutput(log_probs, frame_lens, heads)


def ctc_min_frames(ids: Sequence[int]) -> int:
    """Frames a CTC path of ``ids`` needs: one per unit plus a blank between equal neighbours."""
    return len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))


@dataclass(frozen=True)
class TextLogp:
    """Per-unit ``log P_ctc(text | tokens)`` of a batch; infeasible rows hold INFEASIBLE_LOGP."""

    values: torch.Tensor  # [B]
    feasible: torch.Tensor  # [B] bool


class Token2Text:
    """The network with its output units and label sets, as a checkpoint stores them."""

    def __init__(
        self, net: Token2TextNet, units: AsrUnits, labels: Mapping[str, Sequence[str]]
    ) -> None:
        if set(labels) != set(net.heads):
            raise ValueError(f"label sets {sorted(labels)} do not match heads {sorted(net.heads)}")
        self.net, self.units = net, units
        self.labels = {name: list(values) for name, values in labels.items()}

    @classmethod
    def build(
        cls,
        cfg: Token2TextConfig,
        num_speech_tokens: int,
        units: AsrUnits,
        labels: Mapping[str, Sequence[str]],
    ) -> Token2Text:
        """A fresh model (weights from the global torch RNG)."""
        sizes = {name: len(values) for name, values in labels.items()}
        return cls(Token2TextNet(cfg, num_speech_tokens, units.size, sizes), units, labels)

    def state(self) -> dict:
        """The checkpoint dict: everything ``from_state`` needs, weights included."""
        return {
            "kind": CHECKPOINT_KIND,
            "config": dataclasses.asdict(self.net.cfg),
            "num_speech_tokens": self.net.num_speech_tokens,
            **self.units.state(),
            "labels": self.labels,
            "model": self.net.state_dict(),
        }

    @classmethod
    def from_state(cls, state: Mapping) -> Token2Text:
        model = cls.build(
            Token2TextConfig(**state["config"]),
            int(state["num_speech_tokens"]),
            AsrUnits.from_state(state),
            state["labels"],
        )
        model.net.load_state_dict(state["model"])
        model.net.eval()
        return model

    @property
    def device(self) -> torch.device:
        return self.net.embed.weight.device

    def run_ids(self, tokens: Sequence[Sequence[int]]) -> Token2TextOutput:
        """The network on hard speech-token sequences (right-padded here)."""
        lens = torch.tensor([len(t) for t in tokens], dtype=torch.long)
        ids = torch.zeros(len(tokens), max(int(lens.max()), 1), dtype=torch.long)
        for row, seq in enumerate(tokens):
            ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        return self.net(self.net.embed(ids.to(self.device)), lens)

    def run_probs(self, probs: torch.Tensor, lens: torch.Tensor) -> Token2TextOutput:
        """The network on soft tokens ``[B, T, S]`` (rows past ``lens`` are ignored)."""
        return self.net(self.net.embed_probs(probs), lens)

    def text_logp(self, out: Token2TextOutput, texts: Sequence[str]) -> TextLogp:
        """``log P_ctc(text | tokens) / units(text)`` per row, differentiable into the inputs."""
        ids = [self.units.encode(t) for t in texts]
        empty = [t for t, i in zip(texts, ids, strict=True) if not i]
        if empty:
            raise ValueError(f"Token2Text: reference text with no units: {empty[0]!r}")
        device = out.log_probs.device
        n_units = torch.tensor([len(i) for i in ids], device=device)
        nll = nn.functional.ctc_loss(
            out.log_probs.transpose(0, 1), torch.tensor([u for i in ids for u in i], device=device),
            out.frame_lens, n_units, blank=self.units.blank_id, reduction="none",
            zero_infinity=True,
        )  # fmt: skip
        needed = torch.tensor([ctc_min_frames(i) for i in ids], device=device)
        feasible = out.frame_lens >= needed
        values = torch.where(feasible, -nll / n_units.to(nll.dtype), INFEASIBLE_LOGP)
        return TextLogp(values, feasible)

    def label_logp(self, out: Token2TextOutput, name: str, labels: Sequence[str]) -> torch.Tensor:
        """``[B]`` ``log P(label | tokens)`` from head ``name``; a label it never saw is an
        error (the head cannot score it)."""
        if name not in self.labels:
            raise KeyError(f"Token2Text has no {name!r} head; it has {sorted(self.labels)}")
        known = self.labels[name]
        unknown = sorted({x for x in labels if x not in known})
        if unknown:
            raise ValueError(f"Token2Text {name} head: label(s) {unknown} not among {known}")
        logp = torch.log_softmax(out.head_logits[name], dim=-1)
        index = torch.tensor([known.index(x) for x in labels], device=logp.device)
        return logp.gather(1, index[:, None])[:, 0]

    def transcripts(self, out: Token2TextOutput) -> list[str]:
        """Greedy CTC transcripts of a batch."""
        ids = ctc_greedy(out.log_probs, out.frame_lens, self.units.blank_id)
        return [self.units.decode(row) for row in ids]

    def predictions(self, out: Token2TextOutput, name: str) -> list[str]:
        """The most likely label of each row under head ``name``."""
        best = out.head_logits[name].argmax(dim=-1).tolist()
        return [self.labels[name][i] for i in best]

    @torch.no_grad()
    def transcribe(self, tokens: Sequence[Sequence[int]]) -> list[str]:
        return self.transcripts(self.run_ids(tokens))


def load_token2text(path: str | Path) -> Token2Text:
    """A Token2Text checkpoint written by ``local_lib.bin.train_token2text``, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Token2Text checkpoint not found")
    state = torch.load(path, map_location="cpu", weights_only=False)
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind != CHECKPOINT_KIND:
        raise ValueError(f"{path}: not a Token2Text checkpoint (kind={kind!r})")
    return Token2Text.from_state(state)
