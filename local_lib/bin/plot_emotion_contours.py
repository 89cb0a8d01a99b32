"""Stage 8 figure: one test sentence in every emotion, mel spectrogram and F0 per system.

    python -m local_lib.bin.plot_emotion_contours --data-dir data/test \\
        --system natural=data/test/wav.scp --system base=exp/tts_base/synth/test/wav.scp \\
        --system easpo=exp/tts_easpo/synth/test/wav.scp --out exp/report/emotion_contours.png \\
        [--feats-config conf/feats.yaml] [--speaker 0011] [--text "The book was wet at midnight."]

Rows are the emotions (utt2emo) in which one speaker reads the chosen sentence; columns are the
systems' log-mel spectrograms, then one panel of F0 contours with a line per system. Without
--text the first sentence (in utterance order) that the speaker reads in the most emotions is
taken; the sentence is matched after the evaluators' text normalisation. A system whose stage 6
drew several takes of each utterance (``<utt>#k`` in its wav.scp, ``local_lib.eval.samples``)
is drawn with take 0, the one keyed by the utterance id, so every cell holds one take.
"""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from local_lib.atomic_io import atomic_path  # noqa: E402
from local_lib.data.audio import load_audio  # noqa: E402
from local_lib.data.features import LogMelConfig, log_mel  # noqa: E402
from local_lib.data.kaldi_dir import read_kv  # noqa: E402
from local_lib.eval.prosody import ProsodyConfig, f0_contour  # noqa: E402
from local_lib.eval.text_norm import normalize_text  # noqa: E402
from local_lib.models.gradtts.data import load_tts_items  # noqa: E402

log = logging.getLogger("plot_emotion_contours")


@dataclass(frozen=True)
class Choice:
    """The sentence shown: its text, speaker and the utterance of each emotion."""

    text: str
    speaker: str
    utt_by_emotion: dict[str, str]


def choose_sentence(
    data_dir: Path, speaker: str | None = None, text: str | None = None
) -> Choice:
    """The utterances of one speaker reading one sentence, one per emotion (see module doc)."""
    items = load_tts_items(data_dir)
    groups: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    first_text: dict[tuple[str, str], str] = {}
    for utt, txt, spk, emo in zip(items.utts, items.texts, items.speakers, items.emotions):
        key = (spk, normalize_text(txt))
        groups[key].setdefault(emo, utt)
        first_text.setdefault(key, txt)
    keys = [
        k for k in groups
        if (speaker is None or k[0] == speaker) and (text is None or k[1] == normalize_text(text))
    ]  # fmt: skip
    if not keys:
        raise ValueError(
            f"{data_dir}: no utterance of speaker {speaker or 'any'} with text {text or 'any'}"
        )
    best = max(keys, key=lambda k: len(groups[k]))  # max keeps the first of equals
    return Choice(first_text[best], best[0], dict(sorted(groups[best].items())))


def parse_system(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=WAV_SCP, got {value!r}")
    return name, Path(path)


def plot(
    choice: Choice,
    systems: list[tuple[str, dict[str, str]]],
    feats: LogMelConfig,
    out: Path,
) -> None:
    """Draw the grid into ``out`` (PNG, written atomically)."""
    emotions = list(choice.utt_by_emotion)
    prosody = ProsodyConfig(sample_rate=feats.sample_rate, hop_length=feats.hop_length,
                            win_length=feats.win_length)  # fmt: skip
    n_cols = len(systems) + 1
    fig, axes = plt.subplots(
        len(emotions), n_cols, figsize=(3.2 * n_cols, 1.9 * len(emotions)), squeeze=False
    )
    for row, emotion in enumerate(emotions):
        utt = choice.utt_by_emotion[emotion]
        f0_ax = axes[row, -1]
        for col, (name, wav_scp) in enumerate(systems):
            ax = axes[row, col]
            if utt not in wav_scp:
                raise ValueError(f"system {name}: {utt} ({emotion}) missing from its wav.scp")
            wav = load_audio(wav_scp[utt], feats.sample_rate)
            ax.imshow(log_mel(wav, feats).T, origin="lower", aspect="auto", cmap="magma")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name)
            if col == 0:
                ax.set_ylabel(emotion)
            f0 = f0_contour(wav, prosody)
            seconds = np.arange(len(f0)) * feats.hop_length / feats.sample_rate
            f0_ax.plot(seconds, np.where(f0 > 0, f0, np.nan), label=name, linewidth=1.0)
        f0_ax.set_ylabel("F0 (Hz)")
        if row == 0:
            f0_ax.set_title("F0 contours")
            f0_ax.legend(fontsize="x-small")
    axes[-1, -1].set_xlabel("time (s)")
    fig.suptitle(f'speaker {choice.speaker}: "{choice.text}"', fontsize="medium")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-dir", type=Path, required=True, help="text, utt2spk, utt2emo")
    p.add_argument("--system", type=parse_system, action="append", required=True,
                   metavar="NAME=WAV_SCP", help="repeatable; columns in this order")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--feats-config", type=Path, default=None, help="LogMelConfig YAML")
    p.add_argument("--speaker", default=None)
    p.add_argument("--text", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    feats = LogMelConfig.from_yaml(args.feats_config) if args.feats_config else LogMelConfig()
    choice = choose_sentence(args.data_dir, args.speaker, args.text)
    systems = [(name, read_kv(scp)) for name, scp in args.system]
    plot(choice, systems, feats, args.out)
    log.info("wrote %s: %r by %s in %s", args.out, choice.text, choice.speaker,
             ", ".join(choice.utt_by_emotion))  # fmt: skip


if __name__ == "__main__":
    main()
