"""Reward functions behind one registry; importing the package registers the built-in ones."""

from local_lib.rewards import asr_rewards  # noqa: F401  (registers asr_wer, asr_nll)
from local_lib.rewards import attention_rewards  # noqa: F401  (attention_alignment)
from local_lib.rewards import token_rewards  # noqa: F401  (token_text)
from local_lib.rewards.registry import (
    RewardError,
    RewardOutput,
    RewardReferences,
    RewardSet,
    RolloutBatch,
    build_rewards,
    register_reward,
    registered_rewards,
)

__all__ = [
    "RewardError",
    "RewardOutput",
    "RewardReferences",
    "RewardSet",
    "RolloutBatch",
    "build_rewards",
    "register_reward",
    "registered_rewards",
]
