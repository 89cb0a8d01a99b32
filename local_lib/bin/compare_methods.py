"""Stage 8 of egs/libritts/compare: every method against the base and its best rival.

Each --method names its stage-5 dir (metrics.jsonl with the budget's ``cpu_s``, synth/<set>
scored by stage 7) and the base dir of the same recipe tag (the base's scores, the base as its
reward model reads it)::

    python -m local_lib.bin.compare_methods --out-dir exp/report_compare --set test \\
        --method grpo=exp/tts_grpo_grpo,exp/tts_base_grpo \\
        --method w3ar=exp/tts_w3ar_w3ar,exp/tts_base_w3ar

Writes <out-dir>/REPORT.md: one table per system (evaluator WER, CER, SIM, the reward model's
WER, stage-5 steps, CPU seconds and rollout throughput), the reward model's view paired against
the base, a plot of evaluator WER against stage-5 CPU seconds through the --checkpoint points
(wer_vs_cpu.png), then the
evaluator report of local_lib.bin.report with every method paired against the base and against
the other method of lowest WER.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from local_lib.eval.method_comparison import build_comparison, parse_method, with_checkpoints


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(
        prog="python -m local_lib.bin.compare_methods",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--set", default="test", help="the test set compared (synth/<set>)")
    p.add_argument("--method", action="append", required=True,
                   metavar="NAME=METHOD_DIR,BASE_DIR", help="repeat, one per method")  # fmt: skip
    p.add_argument("--checkpoint", action="append", default=[], metavar="NAME=STEP,DIR",
                   help="a checkpoint of method NAME at STEP, scored in DIR/synth/<set> "
                   "(repeat): a point of the WER / CPU-seconds plot")  # fmt: skip
    p.add_argument("--title", default=None, help="default: the methods and the set")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    try:
        runs = with_checkpoints([parse_method(spec) for spec in args.method], args.checkpoint)
        title = args.title or f"{', '.join(r.name for r in runs)} on one budget: {args.set}"
        command = shlex.join(["python", "-m", "local_lib.bin.compare_methods", *argv])
        build_comparison(runs, args.set, args.out_dir, args.seed, title, command)
    except ValueError as err:
        raise SystemExit(f"compare_methods: error: {err}") from err
    print(f"wrote {args.out_dir / 'REPORT.md'}")


if __name__ == "__main__":
    main()
