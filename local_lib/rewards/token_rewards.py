"""DiffRO's reward on a sample's hard speech tokens, so sequence-level tools can use it.

DiffRO trains through soft tokens (``local_lib.rl.diffro_loop``). Read on the tokens a sample
actually drew, the same Token2Text scores say whether the reward's pick among N samples is one
the evaluators prefer (``local_lib.bin.best_of_n``): the headroom of DiffRO's reward.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from local_lib.models.token2text import Token2Text
from local_lib.rewards.registry import RewardReferences, RolloutBatch, register_reward
from local_lib.rl.diffro import combine_rewards


@register_reward("token_text")
@torch.no_grad()
def token_text_reward(
    batch: RolloutBatch,
    refs: RewardReferences,
    *,
    scorer: object,
    mtr: Mapping[str, float] | None = None,
) -> torch.Tensor:
    """``log P(text | tokens)`` per text unit (Token2Text's CTC) plus, for each MTR head, its
    weight times ``log P(label | tokens)`` (the label from the references' extras)."""
    if not isinstance(scorer, Token2Text):
        raise ValueError(
            f"token_text needs a Token2Text reward model (train_token2text), got "
            f"{type(scorer).__name__}"
        )
    if batch.speech_tokens is None:
        raise ValueError("token_text reads the samples' speech tokens; the batch has none")
    weights = dict(mtr or {})
    missing = sorted(set(weights) - set(refs.extras))
    if missing:
        raise ValueError(f"MTR head(s) {missing}: the references have no such labels")
    out = scorer.run_ids([[int(x) for x in t] for t in batch.speech_tokens])
    labels = {name: scorer.label_logp(out, name, refs.extras[name]) for name in weights}
    return combine_rewards(scorer.text_logp(out, refs.texts).values, labels, weights).cpu()
