"""Building blocks shared by the Grad-TTS text encoder and the EASPM audio encoder."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sequence_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """``[B]`` lengths -> ``[B, max_len]`` boolean mask of valid positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class SinusoidalEmbedding(nn.Module):
    """Sinusoidal embedding of a continuous time ``t ∈ [0, 1]`` (scaled: resolves small steps)."""

    def __init__(self, dim: int, scale: float = 1000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"embedding dim must be even, got {dim}")
        self.dim = dim
        self.scale = scale

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        freqs = torch.exp(
            -math.log(10000.0)
            * torch.arange(half, device=t.device, dtype=torch.float32)
            / (half - 1)
        )
        args = self.scale * t.float()[:, None] * freqs[None, :]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class TimeMLP(nn.Module):
    """Sinusoidal features -> a learned conditioning vector."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            SinusoidalEmbedding(dim), nn.Linear(dim, 4 * dim), nn.Mish(), nn.Linear(4 * dim, dim)
        )

    def forward(self, t: Tensor) -> Tensor:
        return self.net(t)


class AdaLayerNorm(nn.Module):
    """LayerNorm whose scale and shift come from a conditioning vector (zero-initialised, so a
    fresh block starts as a plain LayerNorm)."""

    def __init__(self, dim: int, cond_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.to_scale_shift = nn.Linear(cond_dim, 2 * dim)
        nn.init.zeros_(self.to_scale_shift.weight)
        nn.init.zeros_(self.to_scale_shift.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale, shift = self.to_scale_shift(cond).unsqueeze(1).chunk(2, dim=-1)
        return self.norm(x) * (1.0 + scale) + shift


class TransformerBlock(nn.Module):
    """Pre-norm self-attention + convolutional feed-forward over ``[B, T, D]``.

    With ``cond_dim`` set, both norms are adaptive (adaLN) and take a ``[B, cond_dim]`` vector;
    the convolution in the feed-forward gives the block local order without positional tables.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        ff_dim: int,
        kernel_size: int,
        dropout: float,
        cond_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.norm1: nn.Module = AdaLayerNorm(dim, cond_dim) if cond_dim else nn.LayerNorm(dim)
        self.norm2: nn.Module = AdaLayerNorm(dim, cond_dim) if cond_dim else nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.conv1 = nn.Conv1d(dim, ff_dim, kernel_size, padding=kernel_size // 2)
        self.conv2 = nn.Conv1d(ff_dim, dim, kernel_size, padding=kernel_size // 2)
        self.dropout = nn.Dropout(dropout)

    def _norm(self, norm: nn.Module, x: Tensor, cond: Tensor | None) -> Tensor:
        return norm(x, cond) if isinstance(norm, AdaLayerNorm) else norm(x)

    def forward(self, x: Tensor, mask: Tensor, cond: Tensor | None = None) -> Tensor:
        fmask = mask.unsqueeze(-1).to(x.dtype)
        h = self._norm(self.norm1, x, cond)
        h, _ = self.attn(h, h, h, key_padding_mask=~mask, need_weights=False)
        x = (x + self.dropout(h)) * fmask
        h = self._norm(self.norm2, x, cond) * fmask
        h = torch.relu(self.conv1(h.transpose(1, 2)))
        h = self.conv2(self.dropout(h) * fmask.transpose(1, 2)).transpose(1, 2)
        return (x + self.dropout(h)) * fmask
