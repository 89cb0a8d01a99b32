"""Are the reward codec's streams decoupled? Linear probes on each stream's codes.

    python -m local_lib.bin.reward_codec_decoupling --model exp/reward_codec/model.pt \\
        --train-dir data/train --train-tokens dump/train/speech_tokens \\
        --valid-dir data/dev --valid-tokens dump/dev/speech_tokens \\
        --out exp/reward_codec/decoupling.json

HPRO rewards emotion through the style stream and content through the content stream, which
only means something if emotion is decodable from the style codes and hardly from the content
codes, and the text from the content codes and hardly from the style codes. The heads cannot
tell (each reads one stream), so the same small probes are trained on the frozen codes of each
stream of the training tokens and scored on the valid tokens:

- emotion: logistic regression on the mean and standard deviation of the utterance's codes;
  ``emotion_acc_<stream>`` beside ``emotion_chance`` (the majority class of the valid set);
- text: a linear CTC layer on each token's codes with ``context`` neighbours on each side;
  ``cer_<stream>`` (1.0 or more: nothing decodable).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from local_lib.atomic_io import write_text_atomic
from local_lib.bin.train_token2text import load_token_set
from local_lib.eval.error_rate import char_errors
from local_lib.models.asr_units import AsrUnits
from local_lib.models.evaluators import ctc_greedy
from local_lib.models.reward_codec import RewardCodec, load_reward_codec

log = logging.getLogger("reward_codec_decoupling")
STREAMS = ("content", "style")


@torch.no_grad()
def stream_codes(codec: RewardCodec, tokens: Sequence[Sequence[int]]) -> dict[str, list]:
    """Each stream's ``[T, D]`` codes of every utterance."""
    codes: dict[str, list] = {name: [] for name in STREAMS}
    for start in range(0, len(tokens), 32):
        batch = tokens[start : start + 32]
        out = codec.run_ids(batch)
        for name in STREAMS:
            values = getattr(out, name).cpu()
            codes[name] += [values[b, : len(seq)] for b, seq in enumerate(batch)]
    return codes


def pooled(codes: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[N, 2D]``: mean and (population) standard deviation of each utterance's codes."""
    return torch.stack([torch.cat([c.mean(0), c.std(0, correction=0)]) for c in codes])


def emotion_probe(
    train_x: torch.Tensor, train_y: Sequence[str], test_x: torch.Tensor, test_y: Sequence[str],
    steps: int = 300, seed: int = 0,
) -> float:  # fmt: skip
    """Accuracy on the test rows of a logistic regression fitted on the train rows (features
    standardised with the train statistics); test labels unseen in training count as wrong."""
    classes = sorted(set(train_y))
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    torch.manual_seed(seed)
    layer = torch.nn.Linear(train_x.shape[1], len(classes))
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    target = torch.tensor([classes.index(y) for y in train_y])
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(layer((train_x - mean) / std), target).backward()
        opt.step()
    with torch.no_grad():
        best = layer((test_x - mean) / std).argmax(-1).tolist()
    return sum(classes[k] == y for k, y in zip(best, test_y, strict=True)) / max(1, len(test_y))


def with_context(codes: torch.Tensor, context: int) -> torch.Tensor:
    """``[T, D]`` -> ``[T, (2·context + 1)·D]``: each token's codes and its neighbours' (zeros
    beyond the ends)."""
    padded = torch.nn.functional.pad(codes, (0, 0, context, context))
    return torch.cat([padded[k : k + len(codes)] for k in range(2 * context + 1)], dim=-1)


def text_probe(
    train_codes: Sequence[torch.Tensor], train_texts: Sequence[str],
    test_codes: Sequence[torch.Tensor], test_texts: Sequence[str], units: AsrUnits,
    upsample: int, context: int = 2, steps: int = 300, seed: int = 0,
) -> float:  # fmt: skip
    """Character error rate on the test rows of a linear CTC layer (``upsample`` outputs per
    token) fitted on the train rows."""
    dim = train_codes[0].shape[1] * (2 * context + 1)
    torch.manual_seed(seed)
    layer = torch.nn.Linear(dim, upsample * units.size)
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)

    def log_probs(codes: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.nn.utils.rnn.pad_sequence([with_context(c, context) for c in codes], True)
        out = layer(x).reshape(len(codes), x.shape[1] * upsample, units.size)
        return out.log_softmax(-1), torch.tensor([len(c) * upsample for c in codes])

    ids = [units.encode(t) for t in train_texts]
    labels = torch.tensor([u for i in ids for u in i])
    label_lens = torch.tensor([len(i) for i in ids])
    for _ in range(steps):
        opt.zero_grad()
        lp, lens = log_probs(train_codes)
        loss = torch.nn.functional.ctc_loss(
            lp.transpose(0, 1), labels, lens, label_lens, blank=units.blank_id, zero_infinity=True
        )
        loss.backward()
        opt.step()
    with torch.no_grad():
        lp, lens = log_probs(test_codes)
    hyps = [units.decode(row) for row in ctc_greedy(lp, lens, units.blank_id)]
    errors = [char_errors(r, h) for r, h in zip(test_texts, hyps, strict=True)]
    return sum(e.errors for e in errors) / max(1, sum(e.ref_len for e in errors))


def decoupling_report(
    codec: RewardCodec, train: tuple[list, list[str], list[str]],
    valid: tuple[list, list[str], list[str]], steps: int, seed: int,
) -> dict[str, float]:  # fmt: skip
    """Probe scores of both streams; ``train`` and ``valid`` are (tokens, texts, emotions)."""
    codes_train, codes_valid = stream_codes(codec, train[0]), stream_codes(codec, valid[0])
    report = {"emotion_chance": Counter(valid[2]).most_common(1)[0][1] / len(valid[2])}
    for name in STREAMS:
        report[f"emotion_acc_{name}"] = emotion_probe(
            pooled(codes_train[name]), train[2], pooled(codes_valid[name]), valid[2], steps, seed
        )
        report[f"cer_{name}"] = text_probe(
            codes_train[name], train[1], codes_valid[name], valid[1], codec.units,
            codec.net.cfg.upsample, steps=steps, seed=seed,
        )  # fmt: skip
    return report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--model", type=Path, required=True, help="reward codec (train_reward_codec)")
    for name in ("train-dir", "train-tokens", "valid-dir", "valid-tokens"):
        p.add_argument(f"--{name}", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="JSON report")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps of each probe")
    p.add_argument("--max-utts", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    codec = load_reward_codec(args.model)
    vocab = codec.net.num_speech_tokens
    sets = []
    for data_dir, tokens in ((args.train_dir, args.train_tokens),
                             (args.valid_dir, args.valid_tokens)):  # fmt: skip
        s = load_token_set(data_dir, tokens, vocab, args.max_utts)
        if "emotion" not in s.labels:
            raise ValueError(f"{data_dir}: the emotion probe needs utt2emo")
        sets.append((s.tokens, s.texts, s.labels["emotion"]))
    report = decoupling_report(codec, sets[0], sets[1], args.steps, args.seed)
    write_text_atomic(args.out, json.dumps(report, indent=1, sort_keys=True) + "\n")
    for key, value in sorted(report.items()):
        log.info("%-20s %.3f", key, value)


if __name__ == "__main__":
    main()
