"""Stage 5 of the W3AR recipe: word-level rewards from the reward ASR's cross-attention.

    utils/launch.sh --nproc N -- local_lib.bin.train_w3ar --config conf/w3ar_mini.yaml \\
        --seed 0 --out-dir exp/tts_w3ar --base-dir exp/tts_base/model \\
        --tokenizer dump/speech_tokenizer/tokenizer.pt --train-dir data/train \\
        --tokens dump/train/speech_tokens --reward-model reward_asr=exp/reward_asr/model.pt

The first ``--reward-model`` is the attention reward ASR (train_reward_asr's ESPnet model or a
Whisper directory). Its aligning heads are read from ``<model>.heads.json``
(``local_lib.bin.select_attention_heads``). When that file is missing and the config's
``reward.select_heads_utts`` is above 0, they are chosen here on that many utterances of
``reward.select_heads_dir`` (natural held-out speech; empty: ``--train-dir``) and the file is
written (so the recipe needs no extra stage, and every variant
of stage 5 reads the same heads: the systems training side by side wait on a lock file beside it
while the first chooses); otherwise a missing file is an error naming the command.
Writes what every codec-LM method writes under ``--out-dir`` (``local_lib.train.method_entry``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from local_lib.bin.select_attention_heads import (
    Head,
    heads_file,
    read_heads,
    require_cross_attention,
    select_heads,
)
from local_lib.bin.train_grpo import checked_reward_asr
from local_lib.file_lock import exclusive_lock
from local_lib.models.asr_reward import RewardASR
from local_lib.rl.rollout import SpeechRenderer
from local_lib.rl.w3ar_loop import W3ARLoop, W3ARLoopConfig
from local_lib.train.method_entry import MethodContext, run_codec_lm_method

LOG = logging.getLogger("train_w3ar")


def reward_heads(
    ctx: MethodContext, model: Path, asr: RewardASR, cfg: W3ARLoopConfig
) -> list[Head]:
    """The chosen heads of ``asr``: from its heads file, or chosen on natural speech."""
    reward = cfg.reward
    if heads_file(model).is_file() or reward.select_heads_utts == 0:
        return _read_heads(model)
    # stage 5 trains its systems side by side: the first to get here chooses, the others wait
    # and read what it wrote
    with exclusive_lock(heads_file(model).with_suffix(".lock"), str(heads_file(model))):
        if heads_file(model).is_file():
            return _read_heads(model)
        data_dir = Path(reward.select_heads_dir) if reward.select_heads_dir else ctx.args.train_dir
        LOG.info("%s does not exist: choosing the heads on %s", heads_file(model), data_dir)
        return select_heads(
            asr, model, data_dir, reward.select_heads_utts, reward.heads_top_k, reward,
            write=ctx.dist.is_main,
        )  # fmt: skip


def _read_heads(model: Path) -> list[Head]:
    heads = read_heads(model)
    LOG.info("attention heads %s (%s)", heads, heads_file(model))
    return heads


def build(ctx: MethodContext, cfg: W3ARLoopConfig) -> W3ARLoop:
    name, path = ctx.reward_model("an attention reward ASR (reward_asr or a Whisper directory)")
    tokenizer = ctx.tokenizer
    scorer = checked_reward_asr(name, path, tokenizer.mel_cfg, cfg.rollout.reward_input)
    asr = require_cross_attention(scorer, path)
    renderer = SpeechRenderer(tokenizer, cfg.rollout.vocoder_iters, cfg.rollout.min_wav_s)
    return W3ARLoop(
        ctx.lm, renderer, asr, reward_heads(ctx, path, asr, cfg), ctx.prompt_pool(), cfg,
        tokenizer.token_rate, ctx.args.seed, ctx.dist.rank, ctx.dist.world_size,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    run_codec_lm_method(argv, __doc__, W3ARLoopConfig, build)


if __name__ == "__main__":
    main()
