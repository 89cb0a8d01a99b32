"""Text-to-frame alignment for Grad-TTS: likelihood matrix, MAS path, duration paths.

The search itself is ``local_lib.align.mas.monotonic_alignment_search`` (numba); this module only
builds its input in torch and turns paths back into frame-level tensors.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from local_lib.align.mas import monotonic_alignment_search


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


def hard_alignment(log_likelihood: Tensor, text_lengths: Tensor, mel_lengths: Tensor) -> Tensor:
    """Monotonic hard path ``[B, T_text, T_frames]`` (float 0/1, zero on padding)."""
    result = monotonic_alignment_search(
        log_likelihood.detach().cpu().numpy(),
        text_lengths.detach().cpu().numpy(),
        mel_lengths.detach().cpu().numpy(),
    )
    return torch.from_numpy(result.path).to(log_likelihood.device, log_likelihood.dtype)


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
