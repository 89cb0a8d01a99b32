"""Stage 8: compare scored TTS systems against a baseline in one REPORT.md with plots.

Each --system names a directory holding scores.tsv (stage 7, local_lib.bin.score). REPORT.md
has a table of every metric present (value [95 % bootstrap interval]); the paired difference
of each system against --baseline, and of any --pair SYSTEM:OTHER (an ablation against its
full method), marked better / worse when its interval excludes zero; a bar chart of the
metrics with interval whiskers; and optionally training curves from metrics.jsonl files,
per-utterance scatter plots and extra figures. --seed-mean adds the mean over one method's
training seeds as one more system.

GRPO against its base model::

    python -m local_lib.bin.report --out-dir exp/report --title "GRPO on mini_libritts" \\
        --system base=exp/tts_base/synth/test --system grpo=exp/tts_grpo/synth/test \\
        --baseline base \\
        --curves grpo=exp/tts_grpo/metrics.jsonl --curve-keys "reward/mean kl" \\
        --scatter wer

EASPO with its ablations::

    python -m local_lib.bin.report --out-dir exp/report --title "EASPO ablations" \\
        --system base=exp/tts_base/synth/test easpo=exp/tts_easpo/synth/test \\
                 easpo_k2=exp/tts_easpo_k2/synth/test \\
                 easpo_winner=exp/tts_easpo_winner/synth/test \\
        --baseline base --pair easpo_k2:easpo easpo_winner:easpo --scatter emo_sim

All systems must be scored on the same utterances; --common-utterances instead restricts every
number (table, differences, plots) to the utterances all systems share and says how many each
system lost. Writes <out-dir>/REPORT.md, bars.png, curves.png, scatter_<column>.png and
figures/<name> (copies of --figure images).
"""

import argparse
import logging
import shlex
import sys
from pathlib import Path

from local_lib.eval.report import METRIC_SETS, ReportRequest, build_report
from local_lib.eval.report_inputs import parse_named_path, parse_pair, parse_seed_mean


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m local_lib.bin.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out-dir", type=Path, required=True, help="where REPORT.md and PNGs go")
    p.add_argument("--title", required=True, help="heading of REPORT.md")
    p.add_argument(
        "--system",
        nargs="+",
        action="extend",
        required=True,
        metavar="NAME=DIR",
        help="a system and the directory holding its scores.tsv (repeatable; order kept)",
    )
    p.add_argument("--baseline", required=True, metavar="NAME", help="one of the --system names")
    p.add_argument(
        "--pair",
        nargs="+",
        action="extend",
        default=[],
        metavar="SYSTEM:OTHER",
        help="also report the paired difference SYSTEM − OTHER (e.g. an ablation against the "
        "full method: easpo_k2:easpo)",
    )
    p.add_argument(
        "--seed-mean",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME=A,B,...",
        help="one more system NAME: the per-utterance mean of systems A, B, ... (one method "
        "trained with several seeds); paired with the baseline like the others",
    )
    p.add_argument(
        "--curves",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME=FILE",
        help="a training run's metrics.jsonl (repeatable; one line per run in each panel)",
    )
    p.add_argument(
        "--curve-keys",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEYS",
        help='metrics.jsonl keys to plot, space separated ("reward/mean kl"); default: every '
        "logged key except step and time/*",
    )
    p.add_argument(
        "--curve-smooth",
        type=int,
        default=1,
        metavar="N",
        help="also draw each curve's trailing mean over N logged steps (1: raw values only)",
    )
    p.add_argument(
        "--scatter",
        nargs="+",
        action="extend",
        default=[],
        metavar="COLUMN",
        help="a scores.tsv column (wer, cer, spk_sim, emo_sim, f0_rmse_hz, ...) to plot per "
        "utterance, baseline (x) vs each system (y)",
    )
    p.add_argument(
        "--figure",
        nargs="+",
        action="extend",
        default=[],
        type=Path,
        metavar="PATH",
        help="extra images made by other tools, copied into <out-dir>/figures and linked",
    )
    p.add_argument(
        "--metric-set",
        choices=sorted(METRIC_SETS),
        default="corpus",
        help="corpus: corpus-level WER/CER (data-dir scoring); seedtts: mean per-utterance "
        "WER as seed-tts-eval reports it",
    )
    p.add_argument(
        "--common-utterances",
        action="store_true",
        help="compare on the utterances all systems share instead of failing when they differ",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    return p


def _pairs(specs: list[str], option: str) -> list[tuple[str, Path]]:
    return [parse_named_path(spec, option) for spec in specs]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        request = ReportRequest(
            title=args.title,
            systems=_pairs(args.system, "--system"),
            baseline=args.baseline,
            curves=_pairs(args.curves, "--curves"),
            curve_keys=[k for spec in args.curve_keys for k in spec.split()],
            curve_smooth=args.curve_smooth,
            scatter=args.scatter,
            pairs=[parse_pair(spec) for spec in args.pair],
            seed_means=[parse_seed_mean(spec) for spec in args.seed_mean],
            figures=args.figure,
            metric_set=args.metric_set,
            common_utterances=args.common_utterances,
            seed=args.seed,
            command=shlex.join(["python", "-m", "local_lib.bin.report", *argv]),
        )
        build_report(request, args.out_dir)
    except ValueError as err:
        raise SystemExit(f"report: error: {err}") from err
    print(f"wrote {args.out_dir / 'REPORT.md'}")


if __name__ == "__main__":
    main()
