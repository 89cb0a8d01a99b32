"""U-Net score model ``s_θ(x_t, μ, t, speaker, emotion)`` over the mel "image" ``[n_mels, frames]``.

Follows Grad-TTS's GradLogPEstimator2d in shape (ResNet blocks, linear attention, stride-2
down/up-sampling, x and μ stacked as input channels), with speaker and emotion embeddings added
to the time embedding so they condition every block. Frames are padded internally to a multiple
of ``2**(levels-1)`` and cropped back, so callers pass any length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from local_lib.models.gradtts.config import GradTTSConfig
from local_lib.models.gradtts.layers import TimeMLP


class ResBlock(nn.Module):
    """Two conv-GroupNorm-Mish blocks with the conditioning vector added in between."""

    def __init__(self, dim_in: int, dim_out: int, cond_dim: int, groups: int) -> None:
        super().__init__()
        self.block1 = nn.Sequential(
            nn.Conv2d(dim_in, dim_out, 3, padding=1), nn.GroupNorm(groups, dim_out), nn.Mish()
        )
        self.block2 = nn.Sequential(
            nn.Conv2d(dim_out, dim_out, 3, padding=1), nn.GroupNorm(groups, dim_out), nn.Mish()
        )
        self.cond = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, dim_out))
        self.skip = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor, cond: Tensor) -> Tensor:
        h = self.block1(x * mask) * mask
        h = h + self.cond(cond)[:, :, None, None]
        h = self.block2(h * mask) * mask
        return h + self.skip(x * mask)


class LinearAttention(nn.Module):
    """Linear-complexity attention over all (mel bin, frame) positions, rezero-gated residual.

    Head size is Grad-TTS's 32, capped at half the channels so small U-Nets do not spend most of
    their time in a projection wider than the features.
    """

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        hidden = heads * min(32, max(dim // 2, 1))
        self.to_qkv = nn.Conv2d(dim, 3 * hidden, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, _, hgt, wid = x.shape
        q, k, v = self.to_qkv(x * mask).reshape(b, 3, self.heads, -1, hgt * wid).unbind(1)
        keep = mask.expand(b, 1, hgt, wid).reshape(b, 1, 1, hgt * wid)
        k = k.masked_fill(keep == 0, float("-inf")).softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q).reshape(b, -1, hgt, wid)
        return x + self.gate * self.to_out(out) * mask


class Level(nn.Module):
    """Two ResBlocks and optional attention at one resolution."""

    def __init__(
        self, dim_in: int, dim_out: int, cond_dim: int, groups: int, attention: bool
    ) -> None:
        super().__init__()
        self.res1 = ResBlock(dim_in, dim_out, cond_dim, groups)
        self.res2 = ResBlock(dim_out, dim_out, cond_dim, groups)
        self.attn = LinearAttention(dim_out) if attention else None

    def forward(self, x: Tensor, mask: Tensor, cond: Tensor) -> Tensor:
        x = self.res2(self.res1(x, mask, cond), mask, cond)
        return self.attn(x, mask) if self.attn is not None else x


class ScoreUNet(nn.Module):
    """Score of ``x_t`` given μ, t, speaker and emotion; all mels ``[B, frames, n_mels]``."""

    def __init__(self, cfg: GradTTSConfig, n_speakers: int, n_emotions: int) -> None:
        super().__init__()
        dim, groups, attn = cfg.dec_dim, cfg.dec_groups, cfg.dec_attention
        dims = [dim * m for m in cfg.dec_dim_mults]
        self.factor = 2 ** (len(dims) - 1)
        self.time = TimeMLP(dim)
        self.speaker = nn.Embedding(n_speakers, dim)
        self.emotion = nn.Embedding(n_emotions, dim)
        nn.init.zeros_(self.speaker.weight)
        nn.init.zeros_(self.emotion.weight)
        self.inp = nn.Conv2d(2, dim, 3, padding=1)
        self.downs = nn.ModuleList()
        self.samplers_down = nn.ModuleList()
        prev = dim
        for i, d in enumerate(dims):
            self.downs.append(Level(prev, d, dim, groups, attn))
            if i < len(dims) - 1:
                self.samplers_down.append(nn.Conv2d(d, d, 3, stride=2, padding=1))
            prev = d
        self.mid = Level(prev, prev, dim, groups, attn)
        self.ups = nn.ModuleList()
        self.samplers_up = nn.ModuleList()
        for d in reversed(dims[:-1]):
            self.samplers_up.append(nn.ConvTranspose2d(prev, prev, 4, stride=2, padding=1))
            self.ups.append(Level(prev + d, d, dim, groups, attn))
            prev = d
        self.out = nn.Sequential(
            nn.Conv2d(prev, dim, 3, padding=1),
            nn.GroupNorm(groups, dim),
            nn.Mish(),
            nn.Conv2d(dim, 1, 1),
        )

    def forward(
        self, x: Tensor, mu: Tensor, mask: Tensor, t: Tensor, speaker: Tensor, emotion: Tensor
    ) -> Tensor:
        frames = x.shape[1]
        pad = (-frames) % self.factor
        img = torch.stack([x, mu], dim=1).transpose(2, 3)  # [B, 2, n_mels, frames]
        img = F.pad(img, (0, pad))
        m = F.pad(mask.to(x.dtype), (0, pad))[:, None, None, :]
        cond = self.time(t) + self.speaker(speaker) + self.emotion(emotion)
        h = self.inp(img * m)
        masks, skips = [m], []
        for i, level in enumerate(self.downs):
            h = level(h, masks[-1], cond)
            if i < len(self.samplers_down):
                skips.append(h)
                h = self.samplers_down[i](h * masks[-1])
                masks.append(masks[-1][..., ::2])
        h = self.mid(h, masks[-1], cond)
        for sampler, level in zip(self.samplers_up, self.ups, strict=True):
            h = sampler(h * masks.pop())
            h = level(torch.cat([h, skips.pop()], dim=1), masks[-1], cond)
        out = self.out(h * m) * m
        return out[:, 0, :, :frames].transpose(1, 2)
