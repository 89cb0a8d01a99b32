"""Stage 5 of the GRPO recipe: GRPO post-training of the codec LM with the reward ASR.

    utils/launch.sh --nproc N -- local_lib.bin.train_grpo --config conf/grpo_mini.yaml \\
        --seed 0 --out-dir exp/tts_grpo --base-dir exp/tts_base/model \\
        --tokenizer dump/speech_tokenizer/tokenizer.pt --train-dir data/train \\
        --tokens dump/train/speech_tokens --reward-model reward_ctc=exp/reward_ctc/model.pt

The first ``--reward-model`` is the reward ASR the config's rewards read (as ``scorer``).
Writes ``config.yaml`` and ``command.sh``, ``checkpoints/`` (resumed after a kill),
``metrics.jsonl``, ``train.log``, ``tensorboard/`` and, at the end, ``model/``
(``CodecLM.save_pretrained``) under ``--out-dir``. Each DDP rank samples its own prompts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from local_lib.data.features import LogMelConfig
from local_lib.models.evaluators import load_reward_asr
from local_lib.rewards import build_rewards
from local_lib.rewards.asr_rewards import check_reads_mel
from local_lib.rl.grpo_loop import GRPOLoop, GRPOLoopConfig
from local_lib.rl.rollout import SpeechRenderer
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


def build(ctx: MethodContext, cfg: GRPOLoopConfig) -> GRPOLoop:
    name, path = ctx.reward_model("a reward ASR")
    scorer = checked_reward_asr(name, path, ctx.tokenizer.mel_cfg, cfg.rollout.reward_input)
    renderer = SpeechRenderer(ctx.tokenizer, cfg.rollout.vocoder_iters, cfg.rollout.min_wav_s)
    rewards = build_rewards(cfg.rewards, {"scorer": scorer})
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
