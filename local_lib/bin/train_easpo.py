"""Stage 5: EASPO, stepwise emotional preference optimisation of the Grad-TTS decoder.

    utils/launch.sh --nproc 2 -- local_lib.bin.train_easpo --config conf/easpo_mini.yaml \\
        --seed 0 --base-model exp/tts_base/model.pt --easpm exp/easpm/model.pt \\
        --train-dir data/train --feats-dir dump/train --out-dir exp/tts_easpo

Each step every process draws ``batch_size`` train texts with their speaker and emotion, runs
one EASPO rollout (``local_lib.rl.easpo``) and the Trainer averages the decoder gradients over
processes. Config sections: ``rollout`` (EASPOConfig: k, kappa, t range, beta, loss form,
continuation, ...) and ``train`` (EASPOTrainSection: num_steps, batch_size, decoder lr, ...).
Writes ``<out-dir>/model.pt`` (the base's format: ``load_gradtts`` reads it), the Trainer's
``checkpoints/`` (a killed run resumes), ``train.log`` and ``metrics.jsonl`` with loss,
score_gap, ratio_mean, ratio_std, acc and the step's wall seconds ``time/step`` split into
``time/rollout``, ``time/score`` (EASPM) and ``time/update`` (log-probs, loss, backward,
optimizer); ``train.log`` ends with that split summed over the run.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from local_lib.config import load_config, save_run_config
from local_lib.models.gradtts import GradTTSBundle, load_gradtts
from local_lib.rl.easpo import freeze_for_easpo
from local_lib.rl.easpo_loop import (
    EASPOPolicy,
    EASPORecipeConfig,
    PromptBatch,
    load_emotion_logits,
    load_prompts,
    prompt_batch,
    target_scorer,
)
from local_lib.train.distributed import cleanup, init_distributed
from local_lib.train.timing import StepTimer
from local_lib.train.trainer import Trainer

log = logging.getLogger("train_easpo")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base-model", type=Path, required=True, help="Grad-TTS of stage 4")
    p.add_argument(
        "--easpm", type=Path, required=True,
        help="EASPM of stage 3, or [ours] an emotion classifier (rollout judge: finished)",
    )  # fmt: skip
    p.add_argument("--train-dir", type=Path, required=True)
    p.add_argument("--feats-dir", type=Path, required=True, help="stage 2's dump of the train set")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--num-threads", type=int, default=1, help="torch CPU threads per process")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.num_threads)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    conf = load_config(args.config, EASPORecipeConfig)
    rollout_cfg, cfg = conf.rollout, conf.train
    dist = init_distributed()
    if dist.is_main:
        save_run_config(args.out_dir, conf)
    tts = load_gradtts(args.base_model)
    scorer = target_scorer(load_emotion_logits(args.easpm, tts.emotions, rollout_cfg.judge))
    prompts = load_prompts(args.train_dir, args.feats_dir, tts, cfg.max_frames)
    if dist.is_main:
        log.info("EASPO on %d prompts, %d process(es), k=%d kappa=%g t in [%g, %g] beta=%g "
                 "loss=%s continuation=%s judge=%s (%s) lr=%g", len(prompts.utts),
                 dist.world_size, rollout_cfg.k, rollout_cfg.kappa, rollout_cfg.t_min,
                 rollout_cfg.t_max, rollout_cfg.beta, rollout_cfg.loss, rollout_cfg.continuation,
                 rollout_cfg.judge, args.easpm, cfg.lr)  # fmt: skip
    decoder_params = freeze_for_easpo(tts.model)
    timer = StepTimer()
    module = EASPOPolicy(tts.model, scorer, rollout_cfg, timer)
    optimizer = torch.optim.Adam(decoder_params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    trainer = Trainer(
        module, optimizer, cfg.trainer_config(args.out_dir), dist_info=dist, timer=timer
    )

    def next_batch(micro_step: int) -> PromptBatch:
        # Seeded by step and rank alone: ranks draw different prompts, a resumed run the same.
        seed = (args.seed * 1_000_003 + micro_step) * 1009 + dist.rank
        return prompt_batch(prompts, tts, cfg.batch_size, seed)

    def loss_fn(net: torch.nn.Module, batch: PromptBatch) -> tuple[torch.Tensor, dict[str, float]]:
        return net(batch)

    trainer.fit(loss_fn, next_batch)
    if dist.is_main:
        GradTTSBundle(tts.model.eval(), tts.tokenizer, tts.speakers, tts.emotions).save(
            args.out_dir / "model.pt"
        )
        log.info("wrote %s", args.out_dir / "model.pt")
    cleanup()


if __name__ == "__main__":
    main()
