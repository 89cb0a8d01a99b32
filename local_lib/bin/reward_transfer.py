"""Reward transfer: does the reward a trained system gained buy the evaluator WER that the same
reward buys when it ranks the base's samples?

    python -m local_lib.bin.reward_transfer --base exp/best_of_n/base \\
        --system diffro_long_given_text=exp/best_of_n/diffro_long_given_text [NAME=DIR ...] \\
        --out-dir exp/reward_transfer [--seed 0]

Each DIR is a ``local_lib.bin.best_of_n`` out-dir: N samples per text, each with its reward and
evaluator WER. ``--base`` sampled the base; each ``--system`` its trained policy, with every
other setting the same (texts, N, seed, sampling, reward and its model, evaluators): the
settings are compared through each out-dir's ``config.yaml`` and a difference other than
``base_dir`` is refused. The arithmetic, and how to read it: ``local_lib.eval.reward_transfer``.

Writes ``REWARD_TRANSFER.md`` (also printed; it links the figure), ``reward_transfer.png`` (a
panel per system: each text's reward gain against its WER change, with the line the slope
predicts), ``config.yaml`` and ``command.sh`` under ``--out-dir``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from local_lib.atomic_io import write_text_atomic
from local_lib.bin.best_of_n import SAMPLES, complete_rows, text_samples
from local_lib.config import RUN_CONFIG, differing_keys, load_yaml, lookup, save_run_config
from local_lib.eval.picks import TextSamples
from local_lib.eval.report_plots import transfer_scatter
from local_lib.eval.reward_transfer import render, transfer

REPORT, FIGURE = "REWARD_TRANSFER.md", "reward_transfer.png"
OWN = ("base_dir",)  # the settings a system's samples may differ from the base's in


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--base", type=Path, required=True, help="best_of_n out-dir of the base")
    p.add_argument(
        "--system", nargs="+", required=True, metavar="NAME=DIR",
        help="best_of_n out-dirs of trained systems",
    )  # fmt: skip
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0, help="bootstrap resamples")
    args = p.parse_args(argv)
    systems: dict[str, Path] = {}
    for item in args.system:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            p.error(f"--system wants NAME=DIR, got {item!r}")
        if name in systems:
            p.error(f"--system {name} given twice")
        systems[name] = Path(path)
    args.systems = systems
    return args


def settings(out_dir: Path) -> dict[str, Any]:
    path = out_dir / RUN_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (not a local_lib.bin.best_of_n out-dir?)")
    return load_yaml(path)


def same_settings(base: dict[str, Any], other: dict[str, Any], where: Path) -> None:
    """Refuse samples drawn otherwise than the base's, apart from the policy."""
    differ = differing_keys(base, other, exclude=OWN)
    if differ:
        key = differ[0]
        raise ValueError(
            f"{where / RUN_CONFIG}: sampled otherwise than the base: {key} is "
            f"{lookup(other, key)!r}, the base's {lookup(base, key)!r} "
            f"(differing: {', '.join(differ)})"
        )


def load_samples(out_dir: Path, cfg: dict[str, Any]) -> list[TextSamples]:
    """Every text of ``out_dir`` with all its samples; a text cut short (a killed run) refuses."""
    tsv, n = out_dir / SAMPLES, int(cfg["n"])
    rows = complete_rows(tsv, n)
    if len(rows) < int(cfg["texts"]):
        raise ValueError(
            f"{tsv}: {len(rows)} texts with all {n} samples, the run wanted {cfg['texts']}: "
            "finish it (re-run its best_of_n command; it resumes)"
        )
    texts = []
    for utt, text_rows in rows.items():
        try:
            texts.append(text_samples(utt, text_rows))
        except ValueError as err:  # a score that is not a number
            raise ValueError(f"{tsv}: text {utt}: {err}") from err
    return texts


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    base_cfg = settings(args.base)
    base = load_samples(args.base, base_cfg)
    results = {}
    for name, out_dir in args.systems.items():
        cfg = settings(out_dir)
        same_settings(base_cfg, cfg, out_dir)
        results[name] = transfer(base, load_samples(out_dir, cfg), name, seed=args.seed)
    text = (
        "# Reward transfer: the reward a system gained, and the WER it bought\n\n"
        f"- base: {base_cfg['base_dir']} ({args.base / SAMPLES})\n"
        + "".join(f"- {n}: {settings(d)['base_dir']} ({d / SAMPLES})\n"
                  for n, d in args.systems.items())  # fmt: skip
        + f"- reward: {base_cfg['reward_model']}; evaluator ASR: {base_cfg['evaluator_asr']}; "
        f"{base_cfg['n']} samples per text\n\n"
        + render(results, len(base), args.seed)
        + f"\n![each text's reward gain against its WER change]({FIGURE})\n"
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    run = {"base": args.base, "systems": args.systems, "seed": args.seed}
    command = None if argv is None else ["python", "-m", __spec__.name, *argv]
    save_run_config(args.out_dir, run, command)
    write_text_atomic(args.out_dir / REPORT, text)
    changes = {n: (list(t.text_reward_gains), list(t.text_wer_changes)) for n, t in results.items()}
    slope = next(iter(results.values())).slope.estimate
    transfer_scatter(changes, slope, args.out_dir / FIGURE)
    print(text)


if __name__ == "__main__":
    main()
