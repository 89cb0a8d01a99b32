"""Choose the cross-attention heads of a reward ASR that align text with speech (for W3AR).

    python -m local_lib.bin.select_attention_heads --model exp/reward_asr/model.pt \\
        --data-dir data/dev --max-utts 50 --top-k 2

Only some decoder heads of an attention ASR follow the speech word by word; others look at a
fixed frame (an attention sink) or spread over the utterance, and averaging them in blurs the
W3AR reward. This tool runs natural speech of a data dir (``wav.scp`` + ``text``) through the
ASR teacher-forced on its reference text and, for every (layer, head), averages over the
utterances the W3AR kernels' mean purity (over the tokens) and mean monotonicity (over the
tokens after the first), with the reward's window and beta_m
(``local_lib.align.attention_metrics``). A head aligns when its attention is sharp *and* moves
forward, so heads are ranked by ``purity * max(monotonicity, 0)``: the sum would put a sink
(purity near 1, monotonicity 0) above an aligned head, whose monotonicity is small at
beta_m = 0.1 (about 0.1-0.2 for one or two frames per token). The ``--top-k`` best are chosen.

``--model`` is an ESPnet reward-ASR checkpoint (``train_reward_asr``) or a local Whisper
directory. The choice is written beside it, where ``train_w3ar`` looks for it:
``<model>.heads.json`` (the chosen heads, the settings, a fingerprint of the model so a
retrained model is not read with another's heads, and every head's scores) and
``<model>.heads.md`` (the per-head table, chosen heads marked).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from local_lib.align.attention_metrics import W3ARConfig, attention_metrics
from local_lib.atomic_io import write_json_atomic, write_text_atomic
from local_lib.models.asr_reward import HeadAttention, RewardASR
from local_lib.models.evaluators import load_reward_asr
from local_lib.models.training_data import load_utterances
from local_lib.rl.w3ar import W3ARRewardConfig, token_means

LOG = logging.getLogger("select_attention_heads")
Head = tuple[int, int]


@dataclass(frozen=True)
class HeadScore:
    """One head's mean purity and monotonicity over the utterances."""

    layer: int
    head: int
    purity: float
    monotonicity: float

    @property
    def score(self) -> float:
        return self.purity * max(self.monotonicity, 0.0)


def heads_file(model: Path) -> Path:
    """Where the heads chosen for ``model`` (a file or a directory) are kept."""
    model = Path(model)
    return model.parent / f"{model.name}.heads.json"


def head_scores(attentions: Sequence[HeadAttention], cfg: W3ARConfig) -> list[HeadScore]:
    """Every head's purity and monotonicity, each the mean over the utterances of the mean over
    the utterance's tokens; the heads in the order the attentions list them."""
    if not attentions:
        raise ValueError("no utterances to score the attention heads on")
    purity, monotonicity = np.zeros(len(attentions[0].heads)), np.zeros(len(attentions[0].heads))
    for att in attentions:
        rows = att.per_head()
        n_heads, n_text, n_frames = rows.shape
        metrics = attention_metrics(
            rows, np.full(n_heads, n_text), np.full(n_heads, n_frames),
            np.full((n_heads, n_text), -1), np.zeros(n_heads, np.int64), cfg,
        )  # fmt: skip
        pur, mono = token_means(metrics, np.full(n_heads, n_text))
        purity += pur
        monotonicity += mono
    n = len(attentions)
    return [
        HeadScore(layer, head, float(p / n), float(m / n))
        for (layer, head), p, m in zip(attentions[0].heads, purity, monotonicity, strict=True)
    ]


def choose_heads(scores: Sequence[HeadScore], top_k: int) -> list[Head]:
    """The ``top_k`` heads of highest ``score`` (ties: lower layer, then lower head first)."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    ranked = sorted(scores, key=lambda s: (-s.score, s.layer, s.head))
    return [(s.layer, s.head) for s in ranked[:top_k]]


def score_heads(
    asr: RewardASR,
    wavs: Sequence[np.ndarray],
    texts: Sequence[str],
    reward: W3ARRewardConfig,
    batch_size: int = 8,
) -> list[HeadScore]:
    """``head_scores`` of the ASR's attention on natural speech teacher-forced on its text."""
    cfg = reward.metrics_config(asr.frame_shift_s, speech_token_rate=1.0)  # no spans needed
    attentions = []
    for i in range(0, len(wavs), batch_size):
        attentions += asr.head_attention(wavs[i : i + batch_size], texts[i : i + batch_size])
    return head_scores(attentions, cfg)


def model_fingerprint(model: Path) -> str:
    """sha256 of a checkpoint file; of a model directory, over its files' names and sizes and
    its config.json (hashing gigabytes of Whisper weights would take longer than the choice)."""
    model = Path(model).resolve()
    digest = hashlib.sha256()
    if model.is_file():
        with model.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    for path in sorted(p for p in model.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(model)}\0{path.stat().st_size}\n".encode())
    digest.update((model / "config.json").read_bytes())
    return digest.hexdigest()


def heads_table(scores: Sequence[HeadScore], chosen: Sequence[Head]) -> str:
    """The per-head Markdown table, best first, chosen heads marked."""
    lines = [
        "| layer | head | purity | monotonicity | score | chosen |",
        "|---:|---:|---:|---:|---:|:---:|",
    ]
    for s in sorted(scores, key=lambda s: (-s.score, s.layer, s.head)):
        mark = "yes" if (s.layer, s.head) in chosen else ""
        lines.append(
            f"| {s.layer} | {s.head} | {s.purity:.4f} | {s.monotonicity:.4f} | "
            f"{s.score:.4f} | {mark} |"
        )
    return "\n".join(lines) + "\n"


def write_heads(
    model: Path,
    scores: Sequence[HeadScore],
    chosen: Sequence[Head],
    reward: W3ARRewardConfig,
    source: str,
) -> Path:
    """``<model>.heads.json`` and ``<model>.heads.md``; returns the json's path. ``source``
    says which utterances the heads were chosen on."""
    path = heads_file(model)
    record = {
        "model": str(model),
        "fingerprint": model_fingerprint(model),
        "source": source,
        "window_ms": reward.window_ms,
        "beta": reward.beta,
        "rank": "purity * max(monotonicity, 0)",
        "heads": [list(h) for h in chosen],
        "scores": [asdict(s) for s in scores],
    }
    write_json_atomic(path, record)
    title = f"# Cross-attention heads of {model}\n\nChosen on {source}; ranked by purity x "
    title += f"max(monotonicity, 0), window {reward.window_ms:g} ms, beta_m {reward.beta:g}.\n\n"
    write_text_atomic(path.with_suffix(".md"), title + heads_table(scores, chosen))
    return path


class HeadsFileError(ValueError):
    """No usable heads file for a reward ASR; the message says how to make one."""


def read_heads(model: Path) -> list[Head]:
    """The heads chosen for ``model``; :class:`HeadsFileError` when there is no file or it was
    made for another model (its fingerprint differs)."""
    path = heads_file(model)
    command = (
        f"python -m local_lib.bin.select_attention_heads --model {model} --data-dir data/dev"
    )
    if not path.is_file():
        raise HeadsFileError(
            f"{path}: no attention heads chosen for {model}; make them with: {command} (or let "
            "train_w3ar choose them: reward.select_heads_utts > 0)"
        )
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("fingerprint") != model_fingerprint(model):
        raise HeadsFileError(
            f"{path} was made for another version of {model}; delete it and choose again: {command}"
        )
    return [(int(layer), int(head)) for layer, head in record["heads"]]


def require_cross_attention(asr: object, model: Path) -> RewardASR:
    """``asr`` (loaded from ``model``) if its decoder cross-attention can be read."""
    if not isinstance(asr, RewardASR):
        raise ValueError(
            f"{model}: a {type(asr).__name__} has no decoder cross-attention; W3AR needs an "
            "attention encoder-decoder (train_reward_asr's ESPnet model or a Whisper directory)"
        )
    return asr


def select_heads(
    asr: RewardASR,
    model: Path,
    data_dir: Path,
    max_utts: int,
    top_k: int,
    reward: W3ARRewardConfig,
    write: bool = True,
) -> list[Head]:
    """Score every head of ``asr`` on up to ``max_utts`` evenly spaced utterances of
    ``data_dir``, choose the ``top_k`` best, log the table and (if ``write``) write the files."""
    data = load_utterances(data_dir, asr.sample_rate, max_utts)
    scores = score_heads(asr, data.wavs, data.texts, reward)
    chosen = choose_heads(scores, top_k)
    LOG.info("attention heads of %s:\n%s", model, heads_table(scores, chosen))
    if write:
        source = f"{len(data.utts)} utterances of {data_dir}"
        path = write_heads(model, scores, chosen, reward, source)
        LOG.info("chose heads %s; wrote %s and %s", chosen, path, path.with_suffix(".md"))
    return chosen


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", type=Path, required=True, help="reward ASR checkpoint or dir")
    p.add_argument("--data-dir", type=Path, required=True, help="natural speech: wav.scp, text")
    p.add_argument("--max-utts", type=int, default=50, help="evenly spaced utterances used")
    p.add_argument("--top-k", type=int, default=2, help="heads chosen")
    p.add_argument("--window-ms", type=float, default=120.0, help="purity window")
    p.add_argument("--beta", type=float, default=0.1, help="beta_m of the monotonicity")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    reward = W3ARRewardConfig(window_ms=args.window_ms, beta=args.beta)
    asr = require_cross_attention(load_reward_asr(args.model), args.model)
    select_heads(asr, args.model, args.data_dir, args.max_utts, args.top_k, reward)


if __name__ == "__main__":
    main()
