"""Stage 8 figure: one test utterance's cross-attention under the reward ASR, per system.

    python -m local_lib.bin.plot_attention --model exp/reward_asr/model.pt --data-dir data/test \\
        --system natural=data/test/wav.scp base=exp/tts_base/synth/test/wav.scp \\
        w3ar=exp/tts_w3ar/synth/test/wav.scp --out exp/report/attention.png [--utt ID]

What W3AR rewards, made visible: a panel per system shows the mean of the reward ASR's chosen
heads (``<model>.heads.json``) teacher-forced with the utterance's text (text tokens down, audio
time across) and each word's span as W3AR maps it onto the audio (the kernel's spans, here in
ASR frames), with the word's reward, and the utterance's mean token purity and monotonicity in
the title. A sharp diagonal with words in order is what the reward asks for. Without ``--utt``,
the first utterance (in sorted order) that every system has.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from local_lib.atomic_io import atomic_path  # noqa: E402
from local_lib.bin.plot_emotion_contours import parse_system  # noqa: E402
from local_lib.bin.select_attention_heads import read_heads, require_cross_attention  # noqa: E402
from local_lib.data.audio import load_audio  # noqa: E402
from local_lib.data.kaldi_dir import read_kv  # noqa: E402
from local_lib.models.asr_reward import HeadAttention, RewardASR  # noqa: E402
from local_lib.models.evaluators import load_evaluator  # noqa: E402
from local_lib.rl.w3ar import W3ARRewardConfig, attention_rewards, token_means  # noqa: E402

log = logging.getLogger("plot_attention")


@dataclass(frozen=True)
class WordBox:
    """One word on the figure: its text tokens ``[first, last]`` and frames ``[start, end)``."""

    word: str
    first: int
    last: int
    start: int
    end: int
    reward: float


@dataclass(frozen=True)
class Panel:
    name: str
    attention: np.ndarray  # [n_tokens, n_frames], the chosen heads' mean
    frame_shift_s: float
    boxes: list[WordBox]
    purity: float
    monotonicity: float


def panel(name: str, att: HeadAttention, cfg: W3ARRewardConfig) -> Panel:
    """W3AR's view of one utterance, with the word spans in ASR frames (one frame = one
    'speech token', so the kernel's spans land on the frame axis)."""
    mean = att.mean()
    n_frames = mean.shape[1]
    metrics = attention_rewards(
        [att], [n_frames], cfg.metrics_config(att.frame_shift_s, 1.0 / att.frame_shift_s)
    )
    purity, monotonicity = token_means(metrics, np.array([mean.shape[0]]))
    boxes = []
    for w in range(int(metrics.n_words[0])):
        rows = np.flatnonzero(att.word_index == w)
        start, end = (int(x) for x in metrics.word_span[0, w])
        word = "".join(att.tokens[r] for r in rows).strip()
        boxes.append(WordBox(word, int(rows[0]), int(rows[-1]), start, end,
                             float(metrics.word_reward[0, w])))  # fmt: skip
    return Panel(name, mean, att.frame_shift_s, boxes, float(purity[0]), float(monotonicity[0]))


def draw(panels: list[Panel], utt: str, text: str, out: Path) -> None:
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(10, 2.6 * len(panels)), squeeze=False, layout="constrained"
    )
    for ax, p in zip(axes[:, 0], panels, strict=True):
        n_tokens, n_frames = p.attention.shape
        seconds = n_frames * p.frame_shift_s
        ax.imshow(p.attention, aspect="auto", origin="upper", cmap="viridis", interpolation="none",
                  extent=(0.0, seconds, n_tokens - 0.5, -0.5))  # fmt: skip
        for box in p.boxes:
            x0, x1 = box.start * p.frame_shift_s, box.end * p.frame_shift_s
            ax.add_patch(Rectangle((x0, box.first - 0.5), x1 - x0, box.last - box.first + 1,
                                   fill=False, edgecolor="white", linewidth=1.0))  # fmt: skip
            ax.text(x0, box.first - 0.6, f"{box.word} {box.reward:.2f}", color="white",
                    fontsize=7, va="bottom")  # fmt: skip
        ax.set_title(f"{p.name}: purity {p.purity:.3f}, monotonicity {p.monotonicity:.3f}",
                     fontsize=9)  # fmt: skip
        ax.set_ylabel("text token")
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(f"{utt}: {text}", fontsize=10)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", type=Path, required=True, help="the reward ASR, heads chosen")
    p.add_argument("--data-dir", type=Path, required=True, help="the test set (its text)")
    p.add_argument("--system", type=parse_system, nargs="+", action="extend", required=True,
                   metavar="NAME=WAV_SCP", help="a system's audio, as a wav.scp")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="the PNG")
    p.add_argument("--utt", help="the utterance (default: the first all systems have)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    texts = read_kv(args.data_dir / "text")
    scps = [(name, read_kv(path)) for name, path in args.system]
    shared = sorted(set(texts).intersection(*(set(scp) for _, scp in scps)))
    utt = args.utt or (shared[0] if shared else None)
    if utt is None or utt not in shared:
        missing = [str(path) for (_, path), (_, scp) in zip(args.system, scps) if utt not in scp]
        raise SystemExit(
            f"utterance {utt or '(any)'} is not in {args.data_dir / 'text'} and every system's "
            f"wav.scp (missing from: {', '.join(missing) or args.data_dir / 'text'})"
        )
    asr: RewardASR = require_cross_attention(load_evaluator(args.model), args.model)
    heads = read_heads(args.model)
    cfg = W3ARRewardConfig()
    panels = []
    for name, scp in scps:
        wav = load_audio(scp[utt], asr.sample_rate)
        panels.append(panel(name, asr.head_attention([wav], [texts[utt]], heads)[0], cfg))
    draw(panels, utt, texts[utt], args.out)
    log.info("wrote %s (%s, heads %s)", args.out, utt, heads)


if __name__ == "__main__":
    main()
