"""Stage 3 of the DiffRO recipe: train Token2Text, the reward model that reads speech tokens.

    python -m local_lib.bin.train_token2text --config conf/token2text_mini.yaml --seed 0 \\
        --train-dir data/train --valid-dir data/dev --out-dir exp/token2text \\
        --tokenizer dump/speech_tokenizer/tokenizer.pt \\
        --train-tokens dump/train/speech_tokens --valid-tokens dump/dev/speech_tokens

A CTC ASR over the text units (characters, or stage 2's sentencepiece model with
``--token-list``) plus one utterance classifier (MTR head) per label of the training
data dir (``local_lib.models.token2text``), trained on the natural speech tokens of stage 2.
Writes ``<out-dir>/model.pt`` after every epoch (training resumes from it), ``train.log``,
``config.yaml`` and ``command.sh``. Each epoch logs the dev WER and CER of greedy transcripts
of the dev tokens and, per head, ``dev_acc_<label>`` over the dev utterances whose label the
head knows (LibriTTS's dev speakers are not training speakers: then it is nan) and
``holdout_acc_<label>`` over ``head_holdout`` of the training utterances, whose labels the
heads never train on (the CTC part does train on them).

Config keys (``Token2TextRecipeConfig``): ``model`` (Token2TextConfig), ``train`` (TrainConfig
of ``local_lib.models.fit``), ``heads`` (null: every label of the data dir with two or more
classes; a list picks some, [] none), ``head_weight``, ``head_holdout``, ``token_noise``
(each training token is replaced by a random one with this probability: the policy's samples
are noisier than natural tokens) and ``max_utts``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from local_lib.data.speech_tokens import PromptPool
from local_lib.eval.error_rate import char_errors, word_errors
from local_lib.eval.picks import evenly_spaced
from local_lib.models.asr_units import AsrUnits
from local_lib.models.config_yaml import setup_logging, stage3_config, stage3_parser
from local_lib.models.fit import TrainConfig, add_device_option, fit, resolve_device
from local_lib.models.speech_tokenizer import load_speech_tokenizer
from local_lib.models.token2text import Token2Text, Token2TextConfig

log = logging.getLogger("train_token2text")
EVAL_BATCH = 32


@dataclass(frozen=True)
class Token2TextRecipeConfig:
    """conf/token2text*.yaml."""

    model: Token2TextConfig = Token2TextConfig()
    train: TrainConfig = TrainConfig()
    heads: tuple[str, ...] | None = None  # MTR heads; null: every label with >= 2 classes
    head_weight: float = 1.0  # loss = CTC + head_weight * sum of the heads' cross-entropies
    head_holdout: float = 0.1  # fraction of training utterances kept from the heads' training
    token_noise: float = 0.0  # probability of replacing a training token by a random one
    max_utts: int | None = None

    def __post_init__(self) -> None:
        if self.head_weight < 0:
            raise ValueError(f"head_weight must be >= 0, got {self.head_weight}")
        if not 0.0 <= self.head_holdout < 1.0:
            raise ValueError(f"head_holdout must be in [0, 1), got {self.head_holdout}")
        if not 0.0 <= self.token_noise < 1.0:
            raise ValueError(f"token_noise must be in [0, 1), got {self.token_noise}")


@dataclass(frozen=True)
class TokenSet:
    """A data dir's utterances with their speech tokens, texts and labels, in C order."""

    utts: list[str]
    tokens: list[list[int]]
    texts: list[str]
    labels: dict[str, list[str]]  # label name -> one label per utterance


def load_token_set(
    data_dir: Path, tokens_path: Path, vocab_size: int, max_utts: int | None = None
) -> TokenSet:
    """Every utterance of ``data_dir`` (an evenly spaced ``max_utts`` of them if given, so a
    debug run still sees every speaker of a corpus sorted by speaker)."""
    pool = PromptPool.load(data_dir, tokens_path, vocab_size)
    utts = sorted(pool.utt2spk)
    if max_utts is not None:
        utts = [utts[i] for i in evenly_spaced(len(utts), max_utts)]
    return TokenSet(
        utts,
        [pool.tokens[u] for u in utts],
        [pool.texts[u] for u in utts],
        {name: [by_utt[u] for u in utts] for name, by_utt in pool.labels.items()},
    )


def choose_heads(
    requested: Sequence[str] | None, labels: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Head name -> its classes (sorted). A label with one class (LibriTTS's language) teaches
    a head nothing: it is skipped when heads are not named, an error when named."""
    classes = {name: sorted(set(values)) for name, values in labels.items()}
    if requested is None:
        return {name: c for name, c in classes.items() if len(c) >= 2}
    missing = [name for name in requested if name not in classes]
    if missing:
        raise ValueError(f"heads {missing}: the training data dir has labels {sorted(classes)}")
    single = [name for name in requested if len(classes[name]) < 2]
    if single:
        raise ValueError(f"heads {single}: only one class in the training data")
    return {name: classes[name] for name in requested}


def holdout_rows(count: int, fraction: float, seed: int) -> set[int]:
    """``round(fraction * count)`` training rows, drawn with ``seed``."""
    return set(random.Random(seed).sample(range(count), round(fraction * count)))


def noisy(tokens: Sequence[int], prob: float, vocab: int, gen: torch.Generator) -> list[int]:
    """``tokens`` with each one replaced by a uniform random token with probability ``prob``."""
    ids = torch.tensor(tokens, dtype=torch.long)
    if prob > 0:
        swap = torch.rand(len(ids), generator=gen) < prob
        ids = torch.where(swap, torch.randint(vocab, (len(ids),), generator=gen), ids)
    return ids.tolist()


def accuracy(predicted: Sequence[str], gold: Sequence[str], rows: Sequence[int]) -> float:
    """Fraction of ``rows`` predicted right (nan without rows)."""
    if not rows:
        return math.nan
    return sum(predicted[r] == gold[r] for r in rows) / len(rows)


@torch.no_grad()
def evaluate(model: Token2Text, tokens: Sequence[Sequence[int]]) -> tuple[list[str], dict]:
    """Greedy transcripts and each head's predictions, in batches."""
    texts: list[str] = []
    predictions: dict[str, list[str]] = {name: [] for name in model.labels}
    for start in range(0, len(tokens), EVAL_BATCH):
        out = model.run_ids(tokens[start : start + EVAL_BATCH])
        texts += model.transcripts(out)
        for name in predictions:
            predictions[name] += model.predictions(out, name)
    return texts, predictions


def main(argv: list[str] | None = None) -> None:
    parser = stage3_parser(__doc__)
    add_device_option(parser)
    args = parser.parse_args(argv)
    if None in (args.tokenizer, args.train_tokens, args.valid_tokens):
        parser.error("Token2Text reads speech tokens: give --tokenizer, --train-tokens and "
                     "--valid-tokens (the codec-LM family's stage 3 does)")  # fmt: skip
    device = resolve_device(args.device)
    torch.set_num_threads(args.num_threads)
    setup_logging(args.out_dir / "train.log")
    conf = stage3_config(args, Token2TextRecipeConfig)
    vocab = load_speech_tokenizer(args.tokenizer).vocab_size
    train = load_token_set(args.train_dir, args.train_tokens, vocab, conf.max_utts)
    valid = load_token_set(args.valid_dir, args.valid_tokens, vocab, conf.max_utts)
    heads = choose_heads(conf.heads, train.labels)
    units = AsrUnits.from_texts(train.texts, args.token_list)
    torch.manual_seed(conf.train.seed)  # the initial weights, so a seed reproduces the run
    model = Token2Text.build(conf.model, vocab, units, heads)
    net = model.net.to(device)
    held = holdout_rows(len(train.utts), conf.head_holdout, conf.train.seed)
    text_ids = [torch.tensor(units.encode(t), dtype=torch.long) for t in train.texts]
    gold = {
        name: torch.tensor([classes.index(x) for x in train.labels[name]])
        for name, classes in heads.items()
    }
    gen = torch.Generator().manual_seed(conf.train.seed)
    ctc = torch.nn.CTCLoss(blank=AsrUnits.blank_id, zero_infinity=True)

    def batch_loss(idx: list[int]) -> torch.Tensor:
        out = model.run_ids([noisy(train.tokens[i], conf.token_noise, vocab, gen) for i in idx])
        ys = [text_ids[i] for i in idx]
        loss = ctc(
            out.log_probs.transpose(0, 1), torch.cat(ys).to(device), out.frame_lens,
            torch.tensor([len(y) for y in ys], device=device),
        )  # fmt: skip
        rows = [k for k, i in enumerate(idx) if i not in held]
        if rows and conf.head_weight > 0:
            picked = torch.tensor(rows, device=device)
            for name in heads:
                target = gold[name][[idx[k] for k in rows]].to(device)
                logits = out.head_logits[name].index_select(0, picked)
                loss = loss + conf.head_weight * torch.nn.functional.cross_entropy(logits, target)
        return loss

    held_rows = sorted(held)
    held_tokens = [train.tokens[i] for i in held_rows]

    def validate() -> dict[str, float]:
        hyps, dev_pred = evaluate(model, valid.tokens)
        w = [word_errors(r, h) for r, h in zip(valid.texts, hyps, strict=True)]
        c = [char_errors(r, h) for r, h in zip(valid.texts, hyps, strict=True)]
        metrics = {
            "valid_wer": sum(e.errors for e in w) / max(1, sum(e.ref_len for e in w)),
            "valid_cer": sum(e.errors for e in c) / max(1, sum(e.ref_len for e in c)),
        }
        _, held_pred = evaluate(model, held_tokens)
        for name, classes in heads.items():
            dev_gold = valid.labels.get(name, [])
            known = [k for k, x in enumerate(dev_gold) if x in classes]
            metrics[f"dev_acc_{name}"] = accuracy(dev_pred[name], dev_gold, known)
            held_gold = [train.labels[name][i] for i in held_rows]
            metrics[f"holdout_acc_{name}"] = accuracy(
                held_pred[name], held_gold, range(len(held_rows))
            )
        return metrics

    for name, classes in heads.items():
        dev_known = sum(x in classes for x in valid.labels.get(name, []))
        log.info("MTR head %s: %d classes; %d of %d dev utterances have a known label",
                 name, len(classes), dev_known, len(valid.utts))  # fmt: skip
    log.info(
        "training Token2Text on %d utterances (%d held out from the heads), %d parameters, on %s",
        len(train.utts), len(held), sum(p.numel() for p in net.parameters()), device,
    )  # fmt: skip
    fit(
        net,
        batch_loss,
        [len(t) for t in train.tokens],
        conf.train,
        args.out_dir / "model.pt",
        model.state,
        validate,
    )
    log.info("wrote %s", args.out_dir / "model.pt")


if __name__ == "__main__":
    main()
