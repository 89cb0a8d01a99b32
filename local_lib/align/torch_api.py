"""Torch-in, torch-out wrappers for callers that live in torch (Grad-TTS training, W3AR rewards).

The kernels run on CPU NumPy arrays: inputs are detached and copied to the CPU (half precision is
widened to float32), results come back on the input's device. No gradient flows through them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from local_lib.align.attention_metrics import W3ARConfig, attention_metrics
from local_lib.align.mas import monotonic_alignment_search


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if tensor.is_floating_point() and tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.float()
    return tensor.numpy()


def monotonic_alignment_search_torch(
    log_likelihood: torch.Tensor,
    text_lengths: torch.Tensor,
    frame_lengths: torch.Tensor,
    num_threads: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MAS on ``[B, T_text, T_frames]``: (path in the input's dtype, durations as long).

    With a Grad-TTS style mask ``[B, T_text, T_frames]`` the lengths are
    ``mask[:, :, 0].sum(1)`` (text) and ``mask[:, 0, :].sum(1)`` (frames).
    """
    result = monotonic_alignment_search(
        _to_numpy(log_likelihood), _to_numpy(text_lengths), _to_numpy(frame_lengths), num_threads
    )
    device, dtype = log_likelihood.device, log_likelihood.dtype
    # NumPy's bool -> float cast is several times faster than torch's on CPU.
    path = result.path.astype(np.float64 if dtype == torch.float64 else np.float32)
    return torch.from_numpy(path).to(device=device, dtype=dtype), torch.from_numpy(
        result.durations
    ).to(device)


def attention_metrics_torch(
    attention: torch.Tensor,
    text_lengths: torch.Tensor,
    frame_lengths: torch.Tensor,
    word_index: torch.Tensor,
    speech_lengths: torch.Tensor,
    config: W3ARConfig = W3ARConfig(),
    num_threads: int | None = None,
) -> dict[str, torch.Tensor]:
    """W3AR metrics as tensors on the attention's device, keyed like ``AttentionMetrics``."""
    result = attention_metrics(
        _to_numpy(attention),
        _to_numpy(text_lengths),
        _to_numpy(frame_lengths),
        _to_numpy(word_index),
        _to_numpy(speech_lengths),
        config,
        num_threads,
    )
    return {
        name: torch.from_numpy(value).to(attention.device)
        for name, value in dataclasses.asdict(result).items()
    }
