"""Stage 5 of a codec-LM recipe run with ``--method dpo``: DPO post-training of the codec LM on
pairs of its own samples ranked by the reward ASR (docs/methods.md#dpo).

    utils/launch.sh --nproc N -- local_lib.bin.train_dpo --config conf/dpo_mini.yaml \\
        --seed 0 --out-dir exp/tts_dpo --base-dir exp/tts_base/model \\
        --tokenizer dump/speech_tokenizer/tokenizer.pt --train-dir data/train \\
        --tokens dump/train/speech_tokens --reward-model reward_ctc=exp/reward_ctc/model.pt

The first ``--reward-model`` is the reward ASR the config's rewards read (as ``scorer``), checked
as train_grpo checks it. Writes ``config.yaml`` and ``command.sh``, ``checkpoints/`` (resumed
after a kill), ``metrics.jsonl``, ``train.log``, ``tensorboard/`` and, at the end, ``model/``
under ``--out-dir``. Each DDP rank samples its own prompts and makes its own pairs.
"""

from __future__ import annotations

from local_lib.bin.train_grpo import config_rewards
from local_lib.rl.dpo_loop import DPOLoop, DPOLoopConfig
from local_lib.rl.rollout import SpeechRenderer
from local_lib.train.method_entry import MethodContext, run_codec_lm_method


def build(ctx: MethodContext, cfg: DPOLoopConfig) -> DPOLoop:
    renderer = SpeechRenderer(ctx.tokenizer, cfg.rollout.vocoder_iters, cfg.rollout.min_wav_s)
    rewards = config_rewards(ctx, cfg.rewards, cfg.rollout)
    return DPOLoop(
        ctx.lm, renderer, rewards, ctx.prompt_pool(), cfg, ctx.args.seed, ctx.dist.rank,
        ctx.dist.world_size,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    run_codec_lm_method(argv, __doc__, DPOLoopConfig, build)


if __name__ == "__main__":
    main()
