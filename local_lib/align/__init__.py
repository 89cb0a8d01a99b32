"""Batched numba alignment kernels, each with a plain NumPy reference (``*_reference`` modules).

- :func:`monotonic_alignment_search` (Grad-TTS / Glow-TTS MAS)
- :func:`attention_metrics` (W3AR purity, monotonicity, word rewards and speech-token spans)
- :func:`dtw`, :func:`dtw_batch` (contours and feature sequences)
- :func:`ctc_forced_align`, :func:`word_timestamps`
- torch wrappers in :mod:`local_lib.align.torch_api`
"""

from local_lib.align.attention_metrics import AttentionMetrics, W3ARConfig, attention_metrics
from local_lib.align.ctc_align import CTCAlignment, ctc_forced_align, word_timestamps
from local_lib.align.dtw import DTWResult, dtw, dtw_batch
from local_lib.align.mas import MASResult, monotonic_alignment_search

__all__ = [
    "AttentionMetrics",
    "CTCAlignment",
    "DTWResult",
    "MASResult",
    "W3ARConfig",
    "attention_metrics",
    "ctc_forced_align",
    "dtw",
    "dtw_batch",
    "monotonic_alignment_search",
    "word_timestamps",
]
