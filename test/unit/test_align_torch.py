"""Torch wrappers return the NumPy kernels' results as tensors of the right dtype and device."""

from __future__ import annotations

import numpy as np
import torch

from local_lib.align.attention_metrics import W3ARConfig, attention_metrics
from local_lib.align.mas import monotonic_alignment_search
from local_lib.align.torch_api import attention_metrics_torch, monotonic_alignment_search_torch


def test_mas_torch_matches_numpy_and_keeps_dtype():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((2, 5, 11)).astype(np.float32)
    expected = monotonic_alignment_search(values, [5, 3], [11, 7])
    log_likelihood = torch.from_numpy(values).requires_grad_(True)
    path, durations = monotonic_alignment_search_torch(
        log_likelihood, torch.tensor([5, 3]), torch.tensor([11, 7])
    )
    assert path.dtype == torch.float32 and durations.dtype == torch.int64
    assert not path.requires_grad
    np.testing.assert_array_equal(path.numpy(), expected.path.astype(np.float32))
    np.testing.assert_array_equal(durations.numpy(), expected.durations)
    half_path, _ = monotonic_alignment_search_torch(
        log_likelihood.detach().half(), torch.tensor([5, 3]), torch.tensor([11, 7])
    )
    assert half_path.dtype == torch.float16
    assert half_path.sum().item() == 11 + 7


def test_mas_torch_with_grad_tts_mask_lengths():
    mask = torch.zeros(1, 4, 9)
    mask[0, :3, :8] = 1
    path, durations = monotonic_alignment_search_torch(
        torch.randn(1, 4, 9), mask[:, :, 0].sum(1).long(), mask[:, 0, :].sum(1).long()
    )
    assert durations[0].tolist()[3] == 0 and durations.sum().item() == 8
    assert (path * (1 - mask)).abs().sum().item() == 0


def test_attention_metrics_torch_matches_numpy():
    rng = np.random.default_rng(1)
    attention = rng.random((2, 4, 10)).astype(np.float32)
    words = np.array([[0, 0, 1, -1], [0, 1, 2, 2]])
    config = W3ARConfig(window=3)
    expected = attention_metrics(attention, [4, 4], [10, 8], words, [6, 4], config)
    result = attention_metrics_torch(
        torch.from_numpy(attention),
        torch.tensor([4, 4]),
        torch.tensor([10, 8]),
        torch.from_numpy(words),
        torch.tensor([6, 4]),
        config,
    )
    assert set(result) == set(expected.__dataclass_fields__)
    for name, tensor in result.items():
        assert isinstance(tensor, torch.Tensor)
        np.testing.assert_array_equal(tensor.numpy(), getattr(expected, name))
