"""Grad-TTS text side: character ids -> per-token prior means μ and log-durations."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from local_lib.models.gradtts.config import GradTTSConfig
from local_lib.models.gradtts.layers import TransformerBlock, sequence_mask


@dataclass
class EncoderOutput:
    """Per-token outputs; ``mu`` is ``[B, T_text, n_mels]``, ``log_durations`` ``[B, T_text]``."""

    mu: Tensor
    log_durations: Tensor
    mask: Tensor


class ConvPrenet(nn.Module):
    """Stacked conv + LayerNorm + ReLU with a residual, as Grad-TTS's prenet (local context)."""

    def __init__(self, channels: int, layers: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
            for _ in range(layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        fmask = mask.unsqueeze(-1).to(x.dtype)
        h = x
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = conv((h * fmask).transpose(1, 2)).transpose(1, 2)
            h = self.dropout(torch.relu(norm(h)))
        return (x + self.proj(h)) * fmask


class DurationPredictor(nn.Module):
    """Two conv layers -> log-duration per token."""

    def __init__(
        self, channels: int, filter_channels: int, kernel_size: int, dropout: float
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(channels, filter_channels, kernel_size, padding=pad)
        self.norm1 = nn.LayerNorm(filter_channels)
        self.conv2 = nn.Conv1d(filter_channels, filter_channels, kernel_size, padding=pad)
        self.norm2 = nn.LayerNorm(filter_channels)
        self.proj = nn.Linear(filter_channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        fmask = mask.unsqueeze(-1).to(x.dtype)
        h = self.conv1((x * fmask).transpose(1, 2)).transpose(1, 2)
        h = self.dropout(self.norm1(torch.relu(h)))
        h = self.conv2((h * fmask).transpose(1, 2)).transpose(1, 2)
        h = self.dropout(self.norm2(torch.relu(h)))
        return self.proj(h * fmask).squeeze(-1) * mask.to(x.dtype)


class TextEncoder(nn.Module):
    """Embedding + conv prenet + transformer -> μ per token; speaker and emotion embeddings are
    added to the hidden states so both μ and durations depend on them."""

    def __init__(
        self, cfg: GradTTSConfig, vocab_size: int, n_speakers: int, n_emotions: int
    ) -> None:
        super().__init__()
        ch = cfg.enc_channels
        self.channels = ch
        self.embedding = nn.Embedding(vocab_size, ch, padding_idx=0)
        nn.init.normal_(self.embedding.weight, 0.0, ch**-0.5)
        self.speaker = nn.Embedding(n_speakers, cfg.cond_dim)
        self.emotion = nn.Embedding(n_emotions, cfg.cond_dim)
        self.cond_proj = nn.Linear(cfg.cond_dim, ch)
        self.prenet = ConvPrenet(ch, cfg.prenet_layers, cfg.prenet_kernel_size, cfg.enc_dropout)
        self.layers = nn.ModuleList(
            TransformerBlock(
                ch, cfg.enc_heads, cfg.enc_filter_channels, cfg.enc_kernel_size, cfg.enc_dropout
            )
            for _ in range(cfg.enc_layers)
        )
        self.final_norm = nn.LayerNorm(ch)
        self.proj_mu = nn.Linear(ch, cfg.n_mels)
        self.duration = DurationPredictor(
            ch, cfg.dp_filter_channels, cfg.dp_kernel_size, cfg.enc_dropout
        )

    def forward(
        self, text: Tensor, lengths: Tensor, speaker: Tensor, emotion: Tensor
    ) -> EncoderOutput:
        mask = sequence_mask(lengths, text.shape[1])
        fmask = mask.unsqueeze(-1).float()
        x = self.embedding(text) * math.sqrt(self.channels)
        x = self.prenet(x, mask)
        cond = self.cond_proj(self.speaker(speaker) + self.emotion(emotion))
        x = (x + cond.unsqueeze(1)) * fmask
        for layer in self.layers:
            x = layer(x, mask)
        x = self.final_norm(x) * fmask
        mu = self.proj_mu(x) * fmask
        # Gradient stopped: the duration loss must not reshape the encoder (as in Grad-TTS).
        log_durations = self.duration(x.detach(), mask)
        return EncoderOutput(mu=mu, log_durations=log_durations, mask=mask)
