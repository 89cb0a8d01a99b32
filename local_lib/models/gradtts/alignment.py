"""Text-to-frame alignment for Grad-TTS: the MAS likelihood matrix and duration paths.

The search itself is ``local_lib.align.torch_api.monotonic_alignment_search_torch`` (numba);
this module builds its input and turns paths back into frame-level tensors.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def mel_log_likelihood(mu: Tensor, mel: Tensor) -> Tensor:
    """``log N(mel_j; μ_i, I)`` for every token i and frame j -> ``[B, T_text, T_frames]``.

    Expanded as ``−½‖y‖² + μ·y − ½‖μ‖² + const`` so it is two reductions and one batched matmul
    instead of a ``[B, T_text, T_frames, n_mels]`` difference tensor.
    """
    n_mels = mel.shape[-1]
    y_sq = -0.5 * (mel**2).sum(-1)[:, None, :]
    mu_sq = -0.5 * (mu**2).sum(-1)[:, :, None]
    cross = torch.bmm(mu, mel.transpose(1, 2))
    return y_sq + cross + mu_sq - 0.5 * n_mels * math.log(2 * math.pi)


def path_from_durations(durations: Tensor, max_frames: int) -> Tensor:
    """Integer durations ``[B, T_text]`` -> hard path ``[B, T_text, max_frames]`` (float 0/1)."""
    end = torch.cumsum(durations, dim=1)
    start = end - durations
    frames = torch.arange(max_frames, device=durations.device)[None, None, :]
    path = (frames >= start[..., None]) & (frames < end[..., None])
    return path.float()


def expand_by_path(token_values: Tensor, path: Tensor) -> Tensor:
    """``[B, T_text, D]`` per-token values -> ``[B, T_frames, D]`` per-frame values."""
    return torch.bmm(path.transpose(1, 2).to(token_values.dtype), token_values)
