"""Stage 7: score a system's audio with the evaluators; writes scores.tsv and RESULTS.md.

Data-dir mode (natural, resynthesised or synthesised audio of a test set)::

    python -m local_lib.bin.score --data-dir data/test --wav-dir exp/tts_base/synth/test \\
        --asr exp/eval_asr/model.pt --speaker exp/eval_spk/model.pt \\
        --emotion exp/eval_emo/model.pt --out-dir exp/tts_base/synth/test/score

seed-tts-eval mode::

    python -m local_lib.bin.score --seedtts-list data/seedtts/meta.lst --wav-dir DIR \\
        --asr exp/eval_asr/model.pt --speaker exp/eval_spk/model.pt --out-dir OUT

``--compare-scores OTHER/scores.tsv --compare-name base`` adds the paired difference table.
``--attention`` (with ``--asr`` an attention reward ASR whose heads were chosen, its
``.heads.json``) adds the mean purity and monotonicity of those heads over each utterance's text
tokens: W3AR's view of the audio, where a gain with no WER gain would be reward hacking.
A ``--wav-scp`` with several takes of each utterance (``<utt>``, ``<utt>#1``...; stage 6's
``--num-samples``) is scored take by take into ``scores_takes.tsv``, and ``scores.tsv`` holds
each utterance's mean over its takes (``local_lib.eval.samples``).
"""

import argparse
import logging
from pathlib import Path

import numpy as np

from local_lib.atomic_io import write_text_atomic
from local_lib.bin.select_attention_heads import read_heads, require_cross_attention
from local_lib.eval.data_dir_items import data_dir_items
from local_lib.eval.samples import average_takes, takes_of_items
from local_lib.eval.score_table import (
    CORPUS_METRICS,
    SEEDTTS_METRICS,
    read_scores,
    render_results,
    write_scores,
)
from local_lib.eval.scoring import Aligner, Evaluators, score_items
from local_lib.eval.seedtts_eval import seedtts_items
from local_lib.models.evaluators import load_evaluator
from local_lib.rl.w3ar import W3ARRewardConfig, text_alignment, token_means


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--data-dir", type=Path, help="Kaldi test data dir (text, utt2spk, utt2emo, wav.scp)"
    )
    src.add_argument(
        "--seedtts-list", type=Path, help="seed-tts-eval list utt|prompt_text|prompt_wav|text"
    )
    audio = p.add_mutually_exclusive_group(required=True)
    audio.add_argument("--wav-dir", type=Path, help="audio under test as <wav-dir>/<utt>.wav")
    audio.add_argument("--wav-scp", type=Path, help="audio under test as a wav.scp (data-dir mode)")
    p.add_argument(
        "--reference",
        default="auto",
        choices=["auto", "prompt", "data", "none"],
        help="reference audio for SIM and prosody (data-dir mode)",
    )
    p.add_argument("--asr", type=Path, help="evaluator ASR checkpoint")
    p.add_argument(
        "--open-vocabulary",
        action="store_true",
        help="score the ASR's raw output even when its checkpoint has a lexicon",
    )
    p.add_argument(
        "--attention",
        action="store_true",
        help="also the purity and monotonicity of the --asr's chosen cross-attention heads",
    )
    p.add_argument("--speaker", type=Path, help="speaker encoder checkpoint")
    p.add_argument("--emotion", type=Path, help="emotion classifier checkpoint")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--title", default=None, help="heading of RESULTS.md")
    p.add_argument(
        "--compare-scores", type=Path, help="another system's scores.tsv on the same utterances"
    )
    p.add_argument("--compare-name", default="other system")
    p.add_argument("--no-prosody", action="store_true", help="skip F0/energy DTW distances")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    return p


def attention_aligner(model: Path, asr: object) -> Aligner:
    """Token-mean purity and monotonicity of ``asr``'s chosen heads (W3AR's default settings)."""
    heads = read_heads(model)
    reader = require_cross_attention(asr, model)

    def align(wavs: list[np.ndarray], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        metrics, n_text = text_alignment(reader, heads, wavs, texts, W3ARRewardConfig())
        return token_means(metrics, n_text)

    return align


def verification_lines(result) -> list[str]:
    if result is None:
        return []
    return [
        "## Speaker verification on this audio (speaker encoder, all utterance pairs)",
        "",
        "| EER (%) | same-speaker SIM | different-speaker SIM | SIM gap | same / diff trials |",
        "|---|---|---|---|---|",
        f"| {100 * result.eer:.2f} | {result.same_sim:.3f} | {result.diff_sim:.3f} | "
        f"{result.sim_gap:.3f} | {result.n_same} / {result.n_diff} |",
    ]


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.attention and args.asr is None:
        raise SystemExit("--attention reads the --asr's cross-attention: give --asr")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.seedtts_list is not None:
        if args.wav_dir is None:
            raise SystemExit("--seedtts-list needs --wav-dir")
        items, metrics = seedtts_items(args.seedtts_list, args.wav_dir), SEEDTTS_METRICS
    else:
        items = data_dir_items(args.data_dir, args.wav_dir, args.wav_scp, args.reference)
        # a seed-tts-eval list prepared as a data dir is scored as seed-tts-eval scores it
        seedtts = (args.data_dir / "utt2prompt_wav").is_file()
        metrics = SEEDTTS_METRICS if seedtts else CORPUS_METRICS
    evaluators = Evaluators(
        *(load_evaluator(p) if p else None for p in (args.asr, args.speaker, args.emotion))
    )
    if args.open_vocabulary and evaluators.asr is not None:
        evaluators.asr.lexicon = None
    if args.attention:
        evaluators.aligner = attention_aligner(args.asr, evaluators.asr)
    rows, verification = score_items(
        items, evaluators, args.sample_rate, args.batch_size, not args.no_prosody
    )
    takes = takes_of_items((it.utt, it.take) for it in items)
    num_takes = max((len(keys) for keys in takes.values()), default=1)
    if num_takes > 1:  # every take's row kept; scores.tsv holds the per-utterance means
        write_scores(args.out_dir / "scores_takes.tsv", rows)
        rows = average_takes(rows, takes)
    write_scores(args.out_dir / "scores.tsv", rows)
    comparison = None
    if args.compare_scores is not None:
        comparison = (args.compare_name, read_scores(args.compare_scores))
    title = args.title or f"Scores of {args.wav_dir or args.wav_scp}"
    if num_takes > 1:
        title += f" (each utterance: the mean of {num_takes} takes)"
    text = render_results(
        title, rows, metrics, verification_lines(verification), comparison, args.seed
    )
    write_text_atomic(args.out_dir / "RESULTS.md", text)
    print(text)


if __name__ == "__main__":
    main()
