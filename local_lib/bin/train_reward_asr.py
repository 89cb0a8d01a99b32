"""Stage 3: train the reward ASR, an ESPnet2 attention encoder–decoder over text units.

    python -m local_lib.bin.train_reward_asr --config conf/reward_asr_mini.yaml \\
        --train-dir data/train --valid-dir data/dev --out-dir exp/reward_asr

Its units are the characters of the training text, or with ``--token-list DIR`` stage 2's
units (``local_lib.data.text_units``). Writes ``<out-dir>/model.pt`` after every epoch
(training resumes from it), ``train.log``, ``config.yaml`` and ``command.sh``; load the model
with ``EspnetRewardASR.from_checkpoint``. Config keys (``RewardASRRecipeConfig``): ``model``
(EspnetASRConfig), ``train`` (TrainConfig), ``max_utts``, and ``updates``: a budget of
optimizer steps that, when given, replaces ``train.epochs`` by as many epochs as it takes, so
one config costs about the same time on corpora of different size. ``--device auto`` (the
default) trains on the GPU when torch sees one; the saved model loads on any device.
"""

import dataclasses
import logging
import math
from dataclasses import dataclass

import torch

from local_lib.eval.error_rate import word_errors
from local_lib.models.asr_units import AsrUnits
from local_lib.models.config_yaml import setup_logging, stage3_config, stage3_parser
from local_lib.models.espnet_asr import (
    EspnetASRConfig,
    EspnetRewardASR,
    build_espnet_asr,
    pad_waveforms,
)
from local_lib.models.fit import TrainConfig, add_device_option, fit, resolve_device
from local_lib.models.training_data import load_utterances

log = logging.getLogger("train_reward_asr")
VALID_WER_UTTS = 64
VALID_EVERY_UPDATES = 125


@dataclass(frozen=True)
class RewardASRRecipeConfig:
    """conf/reward_asr*.yaml."""

    model: EspnetASRConfig = EspnetASRConfig()
    train: TrainConfig = TrainConfig()
    max_utts: int | None = None
    updates: int | None = None  # optimizer steps; replaces train.epochs when given


def main(argv: list[str] | None = None) -> None:
    parser = stage3_parser(__doc__)
    add_device_option(parser)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.set_num_threads(args.num_threads)
    setup_logging(args.out_dir / "train.log")
    conf = stage3_config(args, RewardASRRecipeConfig)
    cfg, train_cfg = conf.model, conf.train
    train = load_utterances(args.train_dir, cfg.sample_rate, conf.max_utts)
    valid = load_utterances(args.valid_dir, cfg.sample_rate, conf.max_utts)
    n_batches = math.ceil(len(train.wavs) / train_cfg.batch_size)
    if conf.updates is not None:
        epochs = max(1, math.ceil(conf.updates / n_batches))
        train_cfg = dataclasses.replace(train_cfg, epochs=epochs)
    units = AsrUnits.from_texts(train.texts, args.token_list)
    torch.manual_seed(train_cfg.seed)
    asr = EspnetRewardASR(build_espnet_asr(units, cfg).to(device), units, cfg)
    targets = [units.encode(t) for t in train.texts]

    def batch_loss(idx: list[int]) -> torch.Tensor:
        speech, lens = pad_waveforms([train.wavs[i] for i in idx])
        ys = [targets[i] for i in idx]
        text = torch.full((len(ys), max(len(y) for y in ys)), -1, dtype=torch.long)
        for b, y in enumerate(ys):
            text[b, : len(y)] = torch.tensor(y, dtype=torch.long)
        text_lens = torch.tensor([len(y) for y in ys])
        loss, _, _ = asr.model(
            speech.to(device), lens.to(device), text.to(device), text_lens.to(device)
        )
        return loss

    # Small corpora run many short epochs under an update budget: validate about every
    # VALID_EVERY_UPDATES updates (and after the last epoch) so validation stays a small cost.
    valid_every = max(1, round(VALID_EVERY_UPDATES / n_batches))
    ckpt = args.out_dir / "model.pt"
    resumed = 0
    if ckpt.is_file():
        resumed = torch.load(ckpt, map_location="cpu", weights_only=False)["train_state"]["epoch"]
    epoch = [resumed]

    def validate() -> dict[str, float]:
        epoch[0] += 1
        if epoch[0] % valid_every and epoch[0] < train_cfg.epochs:
            return {}
        batches = range(0, len(valid.wavs), 32)
        nll = torch.cat([asr.nll(valid.wavs[i : i + 32], valid.texts[i : i + 32]) for i in batches])
        # Greedy decoding of an untrained model runs to its length limit: WER on a subset only.
        n_wer = min(len(valid.wavs), VALID_WER_UTTS)
        hyps = [
            h
            for i in range(0, n_wer, 32)
            for h in asr.transcribe(valid.wavs[i : min(i + 32, n_wer)])
        ]
        errs = [word_errors(r, h) for r, h in zip(valid.texts[:n_wer], hyps)]
        return {
            "valid_nll": float(nll.mean()),
            # Spread across utterances: GRPO's NLL reward needs it to rank a group's rollouts.
            "valid_nll_std": float(nll.std()) if len(nll) > 1 else 0.0,
            "valid_wer": sum(e.errors for e in errs) / max(1, sum(e.ref_len for e in errs)),
        }

    log.info(
        "training reward ASR on %d utterances for %d epochs (%d parameters) on %s",
        len(train.wavs),
        train_cfg.epochs,
        sum(p.numel() for p in asr.model.parameters()),
        device,
    )
    fit(
        asr.model,
        batch_loss,
        [len(w) for w in train.wavs],
        train_cfg,
        ckpt,
        asr.checkpoint,
        validate,
    )
    log.info("wrote %s", ckpt)


if __name__ == "__main__":
    main()
