"""Stage 5 of the GRPO recipe: GRPO post-training of the codec LM with the reward ASR.

    utils/launch.sh --nproc N -- local_lib.bin.train_grpo --config conf/grpo_mini.yaml \\
        --seed 0 --out-dir exp/tts_grpo --base-dir exp/tts_base/model \\
        --tokenizer dump/speech_tokenizer/tokenizer.pt --train-dir data/train \\
        --tokens dump/train/speech_tokens --reward-model reward_ctc=exp/reward_ctc/model.pt

The first ``--reward-model`` is the model the config's rewards read (as ``scorer``): a reward
ASR, or a Token2Text checkpoint for the ``token_text`` reward on speech tokens.
Writes ``config.yaml`` and ``command.sh``, ``checkpoints/`` (resumed after a kill),
``metrics.jsonl``, ``train.log``, ``tensorboard/`` and, at the end, ``model/``
(``CodecLM.save_pretrained``) under ``--out-dir``. Each DDP rank samples its own prompts.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local_lib.data.features import LogMelConfig
from local_lib.models.evaluators import load_reward_asr
from local_lib.models.token2text import load_token2text
from local_lib.rewards import RewardSet, build_rewards
from local_lib.rewards.asr_rewards import check_reads_mel
from local_lib.rl.grpo_loop import GRPOLoop, GRPOLoopConfig
from local_lib.rl.rollout import RolloutConfig, SpeechRenderer
from local_lib.train.method_entry import MethodContext, run_codec_lm_method


def checked_reward_asr(name: str, path: Path, mel_cfg: LogMelConfig, reward_input: str) -> Any:
    """The reward ASR at ``path``, checked before any sampling against the tokenizer's
    ``mel_cfg``: its sample rate, and on the mel path its log-mel settings."""
    scorer = load_reward_asr(path)
    if scorer.sample_rate != mel_cfg.sample_rate:
        raise ValueError(
            f"{name} ({path}) expects {scorer.sample_rate} Hz audio but the tokenizer "
            f"decodes at {mel_cfg.sample_rate} Hz"
        )
    if reward_input == "mel":
        check_reads_mel(scorer, mel_cfg)
    return scorer


def reward_scorer(name: str, path: Path, mel_cfg: LogMelConfig, reward_input: str) -> Any:
    """The rewards' model: a Token2Text checkpoint (rewards on speech tokens, DiffRO's) or a
    reward ASR, checked as :func:`checked_reward_asr` checks it."""
    try:
        return load_token2text(path)
    except (FileNotFoundError, ValueError):  # a Whisper directory, or another kind of checkpoint
        return checked_reward_asr(name, path, mel_cfg, reward_input)


def config_rewards(
    ctx: MethodContext, rewards: Mapping[str, Any], rollout: RolloutConfig
) -> RewardSet:
    """A config's registry rewards; their ``scorer`` is the first ``--reward-model`` (a reward
    ASR or Token2Text) and ``scorer_path`` its path."""
    name, path = ctx.reward_model("a reward ASR or a Token2Text model")
    scorer = reward_scorer(name, path, ctx.tokenizer.mel_cfg, rollout.reward_input)
    return build_rewards(rewards, {"scorer": scorer, "scorer_path": path})


def build(ctx: MethodContext, cfg: GRPOLoopConfig) -> GRPOLoop:
    renderer = SpeechRenderer(ctx.tokenizer, cfg.rollout.vocoder_iters, cfg.rollout.min_wav_s)
    rewards = config_rewards(ctx, cfg.rewards, cfg.rollout)
    return GRPOLoop(
        ctx.lm,
        renderer,
        rewards,
        ctx.prompt_pool(),
        cfg,
        ctx.args.seed,
        ctx.dist.rank,
        ctx.dist.world_size,
    )


def main(argv: list[str] | None = None) -> None:
    run_codec_lm_method(argv, __doc__, GRPOLoopConfig, build)


if __name__ == "__main__":
    main()
