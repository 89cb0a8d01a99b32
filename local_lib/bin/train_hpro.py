"""Stage 5 of the HPRO recipe: hierarchical progressive reward optimisation of the codec LM.

    utils/launch.sh --nproc N -- local_lib.bin.train_hpro --config conf/hpro_mini.yaml \\
        --seed 0 --out-dir exp/tts_hpro --base-dir exp/tts_base/model \\
        --tokenizer dump/speech_tokenizer/tokenizer.pt --train-dir data/train \\
        --tokens dump/train/speech_tokens --reward-model reward_codec=exp/reward_codec/model.pt

The first ``--reward-model`` is the reward codec checkpoint (``local_lib.bin.train_reward_codec``)
whose content and style streams give the terms by level (``local_lib.rl.hpro_loop``); the
training data dir needs ``utt2emo`` (the target emotions). Writes ``config.yaml`` and
``command.sh``, ``checkpoints/`` (resumed after a kill), ``metrics.jsonl``, ``train.log``,
``tensorboard/`` and, at the end, ``model/`` (``CodecLM.save_pretrained``) under ``--out-dir``.
Each DDP rank draws its own targets.
"""

from __future__ import annotations

from local_lib.models.reward_codec import load_reward_codec
from local_lib.rl.hpro_loop import HPROLoop, HPROLoopConfig
from local_lib.train.method_entry import MethodContext, run_codec_lm_method


def build(ctx: MethodContext, cfg: HPROLoopConfig) -> HPROLoop:
    _, path = ctx.reward_model("a reward codec (stage 3, train_reward_codec)")
    return HPROLoop(
        ctx.lm,
        load_reward_codec(path),
        ctx.prompt_pool(),
        cfg,
        ctx.args.seed,
        ctx.dist.rank,
        ctx.dist.world_size,
    )


def main(argv: list[str] | None = None) -> None:
    run_codec_lm_method(argv, __doc__, HPROLoopConfig, build)


if __name__ == "__main__":
    main()
