"""Stage 3: train an evaluator (CTC ASR, emotion classifier or speaker encoder) on log-mel.

    python -m local_lib.bin.train_evaluator --config conf/eval_asr_mini.yaml \\
        --train-dir data/train --valid-dir data/dev --out-dir exp/eval_asr

Writes ``<out-dir>/model.pt`` after every epoch (training resumes from it), ``train.log``,
``config.yaml`` and ``command.sh``. Config keys (``EvaluatorRecipeConfig``): ``model``
(EvaluatorNetConfig; its ``kind``, asr | emotion | speaker, picks the evaluator),
``train`` (TrainConfig), ``features`` (LogMelConfig overrides), ``spec_augment``, ``max_utts``,
``crop_frames`` (classifiers: train on random crops of at most this many frames, for speed),
``lexicon`` (ASR: true stores the training transcripts' words, and transcription snaps each
output word to the nearest of them; see ``evaluators.snap_to_lexicon``).
An ASR's output units are the characters of its training text, or with ``--token-list DIR``
stage 2's units (``local_lib.data.text_units``).
``--device auto`` (the default) trains on the GPU when torch sees one.
"""

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
import torch

from local_lib.data.features import LogMelConfig, log_mel_torch
from local_lib.eval.error_rate import char_errors, word_errors
from local_lib.eval.text_norm import normalize_text
from local_lib.eval.verification import verification_trials
from local_lib.models.asr_units import AsrUnits
from local_lib.models.config_yaml import setup_logging, stage3_config, stage3_parser
from local_lib.models.evaluator_nets import EvaluatorNetConfig
from local_lib.models.evaluators import build_evaluator, pad_frames
from local_lib.models.fit import TrainConfig, add_device_option, fit, resolve_device
from local_lib.models.training_data import Utterances, load_utterances

log = logging.getLogger("train_evaluator")


@dataclass(frozen=True)
class EvaluatorRecipeConfig:
    """conf/eval_*.yaml and conf/reward_ctc*.yaml."""

    model: EvaluatorNetConfig
    train: TrainConfig = TrainConfig()
    features: LogMelConfig = LogMelConfig()  # overrides of the log-mel defaults
    spec_augment: bool = True
    max_utts: int | None = None
    crop_frames: int | None = None  # classifiers: train on random crops of this many frames
    lexicon: bool = False  # ASR: snap output words to the training transcripts' words


def spec_augment(mel: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Two frequency and two time masks per utterance (zeros after normalisation ≈ mean)."""
    mel = mel.clone()
    n_frames, n_bins = mel.shape[1], mel.shape[2]
    for b in range(mel.shape[0]):
        for size, axis_len, axis in ((10, n_bins, 2), (20, n_frames, 1)):
            for _ in range(2):
                width = int(torch.randint(0, size + 1, (1,), generator=generator))
                start = int(torch.randint(0, max(1, axis_len - width), (1,), generator=generator))
                if axis == 2:
                    mel[b, :, start : start + width] = mel[b].mean()
                else:
                    mel[b, start : start + width, :] = mel[b].mean()
    return mel


def random_crop(
    mel: torch.Tensor, max_frames: int | None, generator: torch.Generator
) -> torch.Tensor:
    """A random window of at most ``max_frames`` frames (the whole utterance when shorter)."""
    if max_frames is None or mel.shape[0] <= max_frames:
        return mel
    start = int(torch.randint(0, mel.shape[0] - max_frames + 1, (1,), generator=generator))
    return mel[start : start + max_frames]


def labels_of(kind: str, data: Utterances) -> list[str]:
    if kind == "speaker":
        return data.speakers
    if data.emotions is None:
        raise ValueError("emotion evaluator needs utt2emo in the training data dir")
    return data.emotions


def main(argv: list[str] | None = None) -> None:
    parser = stage3_parser(__doc__)
    add_device_option(parser)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.set_num_threads(args.num_threads)
    setup_logging(args.out_dir / "train.log")
    conf = stage3_config(args, EvaluatorRecipeConfig)
    net_cfg, train_cfg, mel_cfg = conf.model, conf.train, conf.features
    train = load_utterances(args.train_dir, mel_cfg.sample_rate, conf.max_utts)
    valid = load_utterances(args.valid_dir, mel_cfg.sample_rate, conf.max_utts)
    mels = [log_mel_torch(torch.from_numpy(w), mel_cfg) for w in train.wavs]
    state = {
        "kind": "evaluator",
        "net_config": dataclasses.asdict(net_cfg),
        "mel_config": dataclasses.asdict(mel_cfg),
    }
    if net_cfg.kind == "asr":
        units = AsrUnits.from_texts(train.texts, args.token_list)
        state.update(units.state())
        if conf.lexicon:
            state["lexicon"] = sorted({w for t in train.texts for w in normalize_text(t).split()})
        targets = [torch.tensor(units.encode(t), dtype=torch.long) for t in train.texts]
    else:
        labels = sorted(set(labels_of(net_cfg.kind, train)))
        state["labels"] = labels
        targets = [torch.tensor(labels.index(x)) for x in labels_of(net_cfg.kind, train)]
    torch.manual_seed(train_cfg.seed)  # the initial weights, so a seed reproduces the run
    evaluator = build_evaluator(state)
    net = evaluator.net.to(device)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    ctc = torch.nn.CTCLoss(blank=AsrUnits.blank_id, zero_infinity=True)

    def batch_loss(idx: list[int]) -> torch.Tensor:
        crop = None if net_cfg.kind == "asr" else conf.crop_frames
        mel, lens = pad_frames([random_crop(mels[i], crop, gen) for i in idx])
        if conf.spec_augment:
            mel = spec_augment(mel, gen)
        mel, lens = mel.to(device), lens.to(device)
        if net_cfg.kind == "asr":
            log_probs, out_lens = net(mel, lens)
            ys = [targets[i] for i in idx]
            return ctc(
                log_probs.transpose(0, 1),
                torch.cat(ys).to(device),
                out_lens,
                torch.tensor([len(y) for y in ys], device=device),
            )
        logits, _ = net(mel, lens)
        gold = torch.stack([targets[i] for i in idx]).to(device)
        return torch.nn.functional.cross_entropy(logits, gold)

    def validate() -> dict[str, float]:
        batches = [valid.wavs[i : i + 32] for i in range(0, len(valid.wavs), 32)]
        if net_cfg.kind == "asr":
            hyps = [h for b in batches for h in evaluator.transcribe(b)]
            w = [word_errors(r, h) for r, h in zip(valid.texts, hyps)]
            c = [char_errors(r, h) for r, h in zip(valid.texts, hyps)]
            return {
                "valid_wer": sum(e.errors for e in w) / max(1, sum(e.ref_len for e in w)),
                "valid_cer": sum(e.errors for e in c) / max(1, sum(e.ref_len for e in c)),
            }
        gold = labels_of(net_cfg.kind, valid)
        preds = [x for b in batches for x in evaluator.classify(b)]
        known = [k for k, g in enumerate(gold) if g in evaluator.labels]
        out = {
            "valid_acc": (
                float(np.mean([preds[k] == gold[k] for k in known])) if known else float("nan")
            )
        }
        if net_cfg.kind == "speaker" and len(set(gold)) > 1:
            emb = np.concatenate([evaluator.embed(b) for b in batches])
            out["valid_eer"] = verification_trials(emb, gold).eer
        return out

    log.info(
        "training %s evaluator on %d utterances (%d parameters) on %s",
        net_cfg.kind,
        len(mels),
        sum(p.numel() for p in net.parameters()),
        device,
    )
    fit(
        net,
        batch_loss,
        [m.shape[0] for m in mels],
        train_cfg,
        args.out_dir / "model.pt",
        lambda: {**state, "model": net.state_dict()},
        validate,
    )
    log.info("wrote %s", args.out_dir / "model.pt")


if __name__ == "__main__":
    main()
