"""Stage 5 of the DiffRO recipe: differentiable reward optimisation of the codec LM.

    utils/launch.sh --nproc N -- local_lib.bin.train_diffro --config conf/diffro_mini.yaml \\
        --seed 0 --out-dir exp/tts_diffro --base-dir exp/tts_base/model \\
        --tokenizer dump/speech_tokenizer/tokenizer.pt --train-dir data/train \\
        --tokens dump/train/speech_tokens --reward-model token2text=exp/token2text/model.pt

The first ``--reward-model`` is the Token2Text checkpoint (``local_lib.bin.train_token2text``)
whose text and label heads give the reward. Writes ``config.yaml`` and ``command.sh``,
``checkpoints/`` (resumed after a kill), ``metrics.jsonl``, ``train.log``, ``tensorboard/`` and,
at the end, ``model/`` (``CodecLM.save_pretrained``) under ``--out-dir``. Each DDP rank samples
its own prompts.
"""

from __future__ import annotations

from local_lib.models.token2text import load_token2text
from local_lib.rl.diffro_loop import DiffROLoop, DiffROLoopConfig
from local_lib.rl.rollout import SpeechRenderer
from local_lib.train.method_entry import MethodContext, run_codec_lm_method


def build(ctx: MethodContext, cfg: DiffROLoopConfig) -> DiffROLoop:
    _, path = ctx.reward_model("a Token2Text reward model (stage 3, train_token2text)")
    # Rollouts takes a renderer; without a reward set it never decodes or vocodes with it.
    renderer = SpeechRenderer(ctx.tokenizer, cfg.rollout.vocoder_iters, cfg.rollout.min_wav_s)
    return DiffROLoop(
        ctx.lm,
        renderer,
        load_token2text(path),
        ctx.prompt_pool(),
        cfg,
        ctx.args.seed,
        ctx.dist.rank,
        ctx.dist.world_size,
    )


def main(argv: list[str] | None = None) -> None:
    run_codec_lm_method(argv, __doc__, DiffROLoopConfig, build)


if __name__ == "__main__":
    main()
