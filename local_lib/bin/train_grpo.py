"""Stage 5 of the GRPO recipe: GRPO post-training of the codec LM with the reward ASR.

    utils/launch.sh --nproc N -- local_lib.bin.train_grpo --config conf/grpo_mini.yaml \\
        --seed 0 --base-dir exp/tts_base/model --tokenizer dump/speech_tokenizer/tokenizer.pt \\
        --reward-asr exp/reward_asr/model.pt --train-dir data/train \\
        --tokens dump/train/speech_tokens --out-dir exp/tts_grpo

Writes ``<out-dir>/checkpoints/`` (resumed after a kill), ``metrics.jsonl``, ``train.log``,
``tensorboard/`` and, at the end, ``<out-dir>/model/`` (``CodecLM.save_pretrained``). Each DDP
rank samples its own prompts; rank 0 writes.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from local_lib.data.speech_tokens import PromptPool
from local_lib.models.codec_lm import CodecLM
from local_lib.models.evaluators import load_reward_asr
from local_lib.models.speech_tokenizer import load_speech_tokenizer
from local_lib.rewards import build_rewards
from local_lib.rl.grpo_loop import GRPOLoop, GRPOLoopConfig, SpeechDecoder
from local_lib.train.distributed import cleanup, init_distributed
from local_lib.train.trainer import Trainer, TrainerConfig, seed_everything

LOG = logging.getLogger("train_grpo")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base-dir", type=Path, required=True, help="CodecLM directory (stage 4)")
    p.add_argument("--tokenizer", type=Path, required=True, help="speech tokenizer (stage 2)")
    p.add_argument("--reward-asr", type=Path, required=True, help="reward ASR (stage 3)")
    p.add_argument("--train-dir", type=Path, required=True, help="data dir: text, utt2spk")
    p.add_argument("--tokens", type=Path, required=True, help="speech tokens of --train-dir")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--num-threads", type=int, default=1, help="torch CPU threads per process")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.num_threads)
    dist_info = init_distributed()
    # rank 0 logs to stderr here; the Trainer adds <out-dir>/train.log
    logging.basicConfig(
        level=logging.INFO if dist_info.is_main else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    cfg = GRPOLoopConfig.from_yaml(args.config)
    seed_everything(args.seed)
    lm = CodecLM.from_pretrained(args.base_dir)
    lm.model.to(dist_info.device)
    tokenizer = load_speech_tokenizer(args.tokenizer)
    scorer = load_reward_asr(args.reward_asr)
    if scorer.sample_rate != tokenizer.mel_cfg.sample_rate:
        raise ValueError(
            f"{args.reward_asr} expects {scorer.sample_rate} Hz audio but {args.tokenizer} "
            f"decodes at {tokenizer.mel_cfg.sample_rate} Hz"
        )
    if lm.layout.num_speech_tokens != tokenizer.vocab_size:
        raise ValueError(
            f"{args.base_dir} has {lm.layout.num_speech_tokens} speech tokens, "
            f"{args.tokenizer} {tokenizer.vocab_size}"
        )
    loop = GRPOLoop(
        lm,
        SpeechDecoder(tokenizer, cfg.vocoder_iters, cfg.min_wav_s),
        build_rewards(cfg.rewards, {"scorer": scorer}),
        PromptPool.load(args.train_dir, args.tokens, tokenizer.vocab_size),
        cfg,
        args.seed,
        dist_info.rank,
        dist_info.world_size,
    )
    optimizer = torch.optim.AdamW(
        loop.policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    loop.attach(optimizer)
    trainer_cfg = TrainerConfig(
        out_dir=args.out_dir,
        num_steps=cfg.num_steps,
        grad_clip=cfg.grad_clip,
        save_every=cfg.save_every,
        log_every=cfg.log_every,
    )
    trainer = Trainer(loop.policy, optimizer, trainer_cfg, dist_info=dist_info)
    LOG.info(
        "GRPO: %d steps, %d prompts x %d samples per step and rank, %d rank(s)",
        cfg.num_steps, cfg.prompts_per_step, cfg.group_size, dist_info.world_size,
    )  # fmt: skip
    trainer.fit(loop.loss, loop.batch)
    if dist_info.is_main:
        lm.save_pretrained(args.out_dir / "model")
        LOG.info("wrote %s", args.out_dir / "model")
    cleanup()


if __name__ == "__main__":
    main()
