"""Stage 3: train EASPM, the time-conditioned emotion scorer that EASPO uses as its judge.

    python -m local_lib.bin.train_easpm --config conf/easpm_mini.yaml --seed 0 \\
        --train-dir data/train --valid-dir data/dev --out-dir exp/easpm

Features come from ``<feats-root>/<basename of dir>/feats.scp`` (stage 2's dump/), emotions from
``utt2emo``. Config sections: ``model`` (EASPMConfig) and ``train`` (EASPMTrainSection). Writes
``<out-dir>/model.pt`` (``local_lib.models.easpm.load_easpm``), the Trainer's ``checkpoints/``,
``train.log`` and ``metrics.jsonl`` (a killed run resumes), and the scorer's pairwise preference
accuracy against diffusion time on the valid set: ``preference_accuracy_vs_t.{tsv,png}``.

With a ``base_negatives`` section (**[ours]**, ``easpm_training.BaseNegatives``) it also needs
``--base-model``, the base Grad-TTS of stage 4: the base speaks a pool of train prompts at the
start and every batch adds (natural, base output) pairs ranked by ``base_negative_loss``;
``metrics.jsonl`` then also has ``loss_clep``, ``loss_base`` and ``base_pair_acc``. Stage 5 of
the EASPO recipe trains such an EASPM for a variant with ``conf/easpm_<variant>*.yaml``:

    python -m local_lib.bin.train_easpm --config conf/easpm_baseneg_mini.yaml --seed 0 \
        --train-dir data/train --valid-dir data/dev --base-model exp/tts_base/model.pt \
        --out-dir exp/easpm_baseneg
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from local_lib.config import load_config, save_run_config
from local_lib.models.config_yaml import stage3_parser
from local_lib.data.kaldi_dir import load_data_dir
from local_lib.models.easpm import EASPM, EASPMBundle, save_easpm
from local_lib.models.easpm_training import (
    EASPMBatch,
    EASPMRecipeConfig,
    attach_prior_means,
    build_base_pairs,
    easpm_loss,
    join_batches,
    load_emotion_mels,
    noisy_base_pairs,
    noisy_group_batch,
    plot_accuracy,
    preference_accuracy_vs_t,
    warmup_cosine,
    write_accuracy_tsv,
)
from local_lib.models.gradtts import load_gradtts
from local_lib.models.gradtts.sde import NoiseSchedule
from local_lib.train.distributed import init_distributed
from local_lib.train.trainer import Trainer

log = logging.getLogger("train_easpm")


def main(argv: list[str] | None = None) -> None:
    parser = stage3_parser(__doc__)
    parser.add_argument(
        "--feats-root",
        type=Path,
        default=Path("dump"),
        help="stage 2's output dir holding <set>/feats.scp (default: dump)",
    )
    parser.add_argument(
        "--base-model",
        type=Path,
        default=None,
        help="[ours] the base Grad-TTS (stage 4) whose outputs are the config's base_negatives",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    conf = load_config(args.config, EASPMRecipeConfig)
    model_cfg, cfg, negatives = conf.model, conf.train, conf.base_negatives
    if (negatives is None) != (args.base_model is None):
        raise ValueError(
            f"{args.config}: a base_negatives section and --base-model go together; got "
            f"{'no' if negatives is None else 'a'} section and "
            f"{'no --base-model' if args.base_model is None else '--base-model'}"
        )
    dist_info = init_distributed()
    if dist_info.is_main:
        save_run_config(args.out_dir, conf)
    seed = 0 if args.seed is None else args.seed
    max_utts = args.max_utts if args.max_utts is not None else cfg.max_utts

    def feats_of(data_dir: Path) -> Path:
        return args.feats_root / data_dir.name / "feats.scp"

    train = load_emotion_mels(args.train_dir, feats_of(args.train_dir), max_utts=max_utts)
    valid = load_emotion_mels(args.valid_dir, feats_of(args.valid_dir), train.labels, max_utts)
    if train.mels[0].shape[1] != model_cfg.n_mels:
        raise ValueError(
            f"{feats_of(args.train_dir)}: features have {train.mels[0].shape[1]} bins, "
            f"{args.config} says n_mels {model_cfg.n_mels}"
        )
    for data in (train, valid):
        attach_prior_means(data, cfg.mu_source, cfg.mu_window, cfg.neutral_emotion)
    log.info("EASPM on %d utterances in %d groups, emotions %s; valid %d utterances",
             len(train.utts), len(train.groups), train.labels, len(valid.utts))  # fmt: skip
    pairs = None
    if negatives is not None:
        train_dir = load_data_dir(args.train_dir)
        pairs = build_base_pairs(
            train, train_dir.text, train_dir.utt2spk, load_gradtts(args.base_model), negatives,
            seed,
        )  # fmt: skip
        log.info("base negatives: %s spoke %d train prompts; %d pairs per batch, weight %g",
                 args.base_model, len(pairs.utts), negatives.pairs_per_batch,
                 negatives.weight)  # fmt: skip

    torch.manual_seed(seed)  # the initial weights, so a seed reproduces the run
    model = EASPM(model_cfg, len(train.labels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule_fn = warmup_cosine(cfg.warmup_steps, cfg.num_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_fn)
    trainer = Trainer(model, optimizer, cfg.trainer_config(args.out_dir), scheduler, dist_info)
    schedule = NoiseSchedule()
    n_groups = min(cfg.groups_per_batch, len(train.groups))
    weight, pairs_per_batch = (0.0, 0) if negatives is None else (
        negatives.weight, negatives.pairs_per_batch
    )

    def next_batch(micro_step: int) -> EASPMBatch:
        # Randomness from the step index alone, so a resumed run draws the same batches.
        gen = torch.Generator().manual_seed(seed * 1_000_003 + micro_step)
        groups = torch.randperm(len(train.groups), generator=gen)[:n_groups].tolist()
        batch = noisy_group_batch(train, groups, cfg.crop_frames, schedule, gen)
        if pairs is None:
            return EASPMBatch(batch)
        ids = torch.randperm(len(pairs.utts), generator=gen)[:pairs_per_batch].tolist()
        pair_batch = noisy_base_pairs(pairs, ids, cfg.crop_frames, schedule, gen)
        return EASPMBatch(join_batches(batch, pair_batch), len(ids))

    def loss_fn(net: torch.nn.Module, batch: EASPMBatch) -> tuple[torch.Tensor, dict[str, float]]:
        noisy = batch.noisy
        return easpm_loss(net(noisy.x_t, noisy.t, noisy.mask), noisy.emotion, batch.n_pairs, weight)

    trainer.fit(loss_fn, next_batch)
    if not trainer.dist.is_main:
        return
    acc = preference_accuracy_vs_t(model, valid, schedule, cfg.eval_bins, cfg.eval_pairs, seed=seed)
    write_accuracy_tsv(acc, args.out_dir / "preference_accuracy_vs_t.tsv")
    plot_accuracy(acc, args.out_dir / "preference_accuracy_vs_t.png",
                  f"EASPM on {args.valid_dir.name}: correct vs wrong emotion")  # fmt: skip
    for lo, hi, a, n in zip(acc.edges[:-1], acc.edges[1:], acc.accuracy, acc.counts):
        log.info("preference accuracy t in [%.2f, %.2f): %.3f (%d pairs)", lo, hi, a, n)
    save_easpm(EASPMBundle(model.eval(), train.labels, cfg.mu_window), args.out_dir / "model.pt")
    log.info("wrote %s", args.out_dir / "model.pt")


if __name__ == "__main__":
    main()
