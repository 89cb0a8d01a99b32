"""Small log-mel evaluator networks that train in CPU minutes.

Both take the project's log-mel features (``LogMelConfig``) normalised per utterance and per
mel bin, so a level change (e.g. from a vocoder) does not move the scores.
"""

from dataclasses import dataclass, fields

import torch
from torch import nn


@dataclass(frozen=True)
class EvaluatorNetConfig:
    """Network sizes; ``kind`` picks the network: ``asr`` (CTC) or ``emotion``/``speaker``."""

    kind: str
    n_mels: int = 80
    channels: int = 192
    conv_layers: int = 6
    embed_dim: int = 128
    dropout: float = 0.1
    # ASR only: time subsampling of the strided front, 2 (20 ms frames) or 4 (40 ms, half the
    # cost of the residual convolutions).
    subsample: int = 2

    def __post_init__(self) -> None:
        if self.kind not in ("asr", "emotion", "speaker"):
            raise ValueError(f"evaluator kind must be asr, emotion or speaker, got {self.kind!r}")
        if self.subsample not in (2, 4):
            raise ValueError(f"evaluator subsample must be 2 or 4, got {self.subsample}")

    @classmethod
    def from_dict(cls, values: dict) -> "EvaluatorNetConfig":
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown evaluator model keys: {unknown}")
        return cls(**values)


def frame_mask(lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """``[B, T]`` True on valid frames."""
    return torch.arange(max_len, device=lens.device)[None, :] < lens[:, None]


def normalise(mel: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Per-utterance, per-bin mean/variance normalisation over valid frames; ``[B, T, F]``."""
    mask = frame_mask(lens, mel.shape[1]).unsqueeze(-1).float()
    count = mask.sum(dim=1, keepdim=True).clamp(min=1)
    mean = (mel * mask).sum(dim=1, keepdim=True) / count
    var = (((mel - mean) * mask) ** 2).sum(dim=1, keepdim=True) / count
    return (mel - mean) / torch.sqrt(var + 1e-5) * mask


class ResidualConv(nn.Module):
    def __init__(self, channels: int, dilation: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 5, padding=2 * dilation, dilation=dilation)
        self.norm = nn.BatchNorm1d(channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(nn.functional.gelu(self.norm(self.conv(x))))


class CtcASRNet(nn.Module):
    """Strided conv front (time /2 or /4) + residual dilated convs (receptive field about a
    second) + CTC output layer. Convolutions rather than a recurrent net or self-attention: an
    epoch of the mini corpus then takes seconds on two CPU cores, and the evaluator differs in
    kind from the reward ASR (an attention encoder-decoder). Two Transformer layers after the
    convolutions were tried on mini_libritts: they fitted the training voices as well but
    stalled at 41 % dev CER where the convolutions alone reached 11 % by the same epoch."""

    def __init__(self, cfg: EvaluatorNetConfig, vocab_size: int):
        super().__init__()
        c = cfg.channels
        self.n_strides = cfg.subsample.bit_length() - 1  # stride-2 convs: 1 for /2, 2 for /4
        front: list[nn.Module] = []
        for i in range(self.n_strides):
            front += [nn.Conv1d(cfg.n_mels if i == 0 else c, c, 5, stride=2, padding=2), nn.GELU()]
        self.front = nn.Sequential(*front)
        self.body = nn.Sequential(
            *(ResidualConv(c, (1, 2, 4)[i % 3], cfg.dropout) for i in range(cfg.conv_layers))
        )
        self.out = nn.Conv1d(c, vocab_size, 1)

    def output_lengths(self, lens: torch.Tensor) -> torch.Tensor:
        """Frames after the strided front (kernel 5, padding 2, stride 2 per stage)."""
        for _ in range(self.n_strides):
            lens = (lens - 1) // 2 + 1
        return lens

    def forward(self, mel: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities ``[B, T', V]`` and output lengths ``[B]``."""
        out_lens = self.output_lengths(lens)
        x = self.body(self.front(normalise(mel, lens).transpose(1, 2)))
        x = x * frame_mask(out_lens, x.shape[-1]).unsqueeze(1)
        return torch.log_softmax(self.out(x).transpose(1, 2), dim=-1), out_lens


class UtteranceClassifierNet(nn.Module):
    """Dilated conv stack + masked mean/std pooling -> embedding -> class logits."""

    def __init__(self, cfg: EvaluatorNetConfig, n_classes: int):
        super().__init__()
        c = cfg.channels
        layers: list[nn.Module] = []
        for i, dilation in enumerate((1, 2, 3)):
            layers += [
                nn.Conv1d(
                    cfg.n_mels if i == 0 else c, c, 5, padding=2 * dilation, dilation=dilation
                ),
                nn.BatchNorm1d(c),
                nn.ReLU(),
            ]
        self.convs = nn.Sequential(*layers)
        self.embed = nn.Linear(2 * c, cfg.embed_dim)
        self.head = nn.Sequential(
            nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.embed_dim, n_classes)
        )

    def embedding(self, mel: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """Utterance embedding ``[B, E]`` (before the classifier's nonlinearity)."""
        x = self.convs(normalise(mel, lens).transpose(1, 2))
        mask = frame_mask(lens, x.shape[-1]).unsqueeze(1).float()
        count = mask.sum(dim=-1).clamp(min=1)
        mean = (x * mask).sum(dim=-1) / count
        std = torch.sqrt((((x - mean.unsqueeze(-1)) * mask) ** 2).sum(dim=-1) / count + 1e-5)
        return self.embed(torch.cat([mean, std], dim=-1))

    def forward(self, mel: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits ``[B, C]`` and embeddings ``[B, E]``."""
        emb = self.embedding(mel, lens)
        return self.head(emb), emb
