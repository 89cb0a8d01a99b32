"""W3AR's word reward as one score per sequence, so any sequence-level tool can use it.

W3AR itself needs the reward word by word (``local_lib.rl.w3ar_loop``). Summed to one number
per sample — the mean of its words' rewards — the same signal can pick among N samples
(``local_lib.bin.best_of_n``: does W3AR's reward carry what the evaluators hear?) or train GRPO.
The heads are those W3AR reads: the file ``select_attention_heads`` wrote beside the reward ASR.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from local_lib.bin.select_attention_heads import read_heads, require_cross_attention
from local_lib.rewards.registry import RewardReferences, RolloutBatch, register_reward
from local_lib.rl.w3ar import W3ARRewardConfig, text_alignment


@register_reward("attention_alignment")
def attention_alignment_reward(
    batch: RolloutBatch,
    refs: RewardReferences,
    *,
    scorer: object,
    scorer_path: Path,
    use_purity: bool = True,
    use_monotonicity: bool = True,
    window_ms: float = 120.0,
    beta: float = 0.1,
) -> torch.Tensor:
    """Mean over the reference text's words of W3AR's word reward (purity and monotonicity of
    the reward ASR's chosen heads, teacher-forced with the text): at most 1, below 0 only if
    the attention runs backwards."""
    if batch.wavs is None:
        raise ValueError("attention_alignment reads audio: use reward_input: audio")
    asr = require_cross_attention(scorer, Path(scorer_path))
    cfg = W3ARRewardConfig(
        use_purity=use_purity, use_monotonicity=use_monotonicity, window_ms=window_ms, beta=beta
    )
    metrics, _ = text_alignment(asr, read_heads(Path(scorer_path)), batch.wavs, refs.texts, cfg)
    valid = np.arange(metrics.word_reward.shape[1])[None, :] < metrics.n_words[:, None]
    means = (metrics.word_reward * valid).sum(axis=1) / np.maximum(metrics.n_words, 1)
    return torch.from_numpy(means).float()
