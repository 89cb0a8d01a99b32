"""How many prompts EASPO's preference gradient needs before its signal outgrows its noise.

    python -m local_lib.bin.easpo_gradient_noise --config conf/easpo_emotion_clf_mini.yaml \\
        --model exp/tts_base/model.pt --easpm exp/emotion_clf/model.pt \\
        --train-dir data/train --feats-dir dump/train --num-prompts 200 \\
        --out-dir exp/gradient_noise_emotion_clf

Each of ``--num-prompts`` train prompts (drawn as stage 5 draws them) gets an EASPO rollout of
its own under the config's ``rollout`` section (its preference steps, k candidates, judge), and
``g_i``, the gradient of that rollout's loss with respect to the decoder at ``--model`` (a base:
policy and reference are the same model, as at the first step of stage 5). With
``G_ij = g_i·g_j``: the squared norm of the expected gradient ``|E g|²`` is the mean of ``G_ij``
over ``i ≠ j`` (unbiased), the total variance ``tr Σ = mean G_ii − |E g|²``, and the noise
scale ``B = tr Σ / |E g|²`` is the number of prompts whose mean gradient has as much signal as
noise (the "simple noise scale" of the large-batch training literature). Over a run of T steps
of b prompts the signal adds up T·b times and the noise only in root, so plain SGD's total
update has signal-to-noise ``sqrt(T·b / B)``: a run with T·b well below B moves the decoder
mostly at random, whatever its judge knows. Intervals: percentile bootstrap over the prompts.

Writes ``gradient_noise.json`` (the numbers) and ``gradient_noise.md`` (a table) to --out-dir.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np
import torch

from local_lib.config import load_config
from local_lib.models.gradtts import load_gradtts
from local_lib.rl.easpo import easpo_rollout, freeze_for_easpo, frozen_reference
from local_lib.rl.easpo_loop import (
    EASPORecipeConfig,
    load_emotion_logits,
    load_prompts,
    prompt_batch,
    target_scorer,
)

log = logging.getLogger("easpo_gradient_noise")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", type=Path, required=True, help="conf/easpo*.yaml of the system")
    p.add_argument("--model", type=Path, required=True, help="Grad-TTS (the base of stage 4)")
    p.add_argument("--easpm", type=Path, required=True, help="the system's preference model")
    p.add_argument("--train-dir", type=Path, required=True)
    p.add_argument("--feats-dir", type=Path, required=True, help="stage 2's dump of the train set")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--num-prompts", type=int, default=200)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    if args.num_prompts < 3 or args.bootstrap < 1:
        p.error("need --num-prompts >= 3 and --bootstrap >= 1")
    return args


def signal_and_energy(gram: np.ndarray, idx: np.ndarray) -> tuple[float, float]:
    """``(|E g|², E|g|²)`` from the gradients ``idx`` (repeats allowed): the mean of ``G_ij`` over
    pairs of distinct prompts, and the mean of ``G_ii``."""
    sub = gram[np.ix_(idx, idx)]
    distinct = idx[:, None] != idx[None, :]
    return float(sub[distinct].mean()), float(np.diag(sub).mean())


def noise_summary(gram: np.ndarray, draws: int, seed: int) -> dict[str, float]:
    """Point estimates and 95 % percentile-bootstrap intervals of the per-prompt signal-to-noise
    ``ρ = |E g|² / tr Σ`` and of ``B = 1/ρ`` (``inf`` where ρ ≤ 0: no signal resolved)."""
    n = gram.shape[0]
    signal, energy = signal_and_energy(gram, np.arange(n))
    rng = np.random.default_rng(seed)
    rhos: list[float] = []
    while len(rhos) < draws:
        idx = rng.integers(0, n, n)
        if np.all(idx == idx[0]):  # one prompt repeated: no pair of distinct prompts to use
            continue
        s, e = signal_and_energy(gram, idx)
        rhos.append(s / (e - s))
    lo, hi = np.percentile(rhos, [2.5, 97.5])
    rho = signal / (energy - signal)
    return {
        "prompts": n,
        "signal": signal,
        "energy": energy,
        "trace_cov": energy - signal,
        "rho": rho,
        "rho_low": float(lo),
        "rho_high": float(hi),
        "noise_scale": inverse(rho),
        "noise_scale_low": inverse(float(hi)),
        "noise_scale_high": inverse(float(lo)),
    }


def inverse(rho: float) -> float:
    return 1.0 / rho if rho > 0 else math.inf


def run_snr(rho: float, prompts_seen: int) -> float:
    """Signal-to-noise of the summed SGD update after ``prompts_seen`` prompts."""
    return math.sqrt(prompts_seen * rho) if rho > 0 else 0.0


def write_table(path: Path, s: dict[str, float], budget: int, batch: int, title: str) -> None:
    def fmt(x: float) -> str:
        return "∞" if math.isinf(x) else f"{x:.3g}"

    lines = [
        f"# {title}", "",
        "| prompts | per-prompt SNR ρ = \\|E g\\|² / tr Σ | noise scale B = 1/ρ (prompts) | "
        "prompts per step b | prompts in the run T·b | run SNR sqrt(T·b·ρ) |",
        "|---|---|---|---|---|---|",
        f"| {s['prompts']} | {fmt(s['rho'])} [{fmt(s['rho_low'])}, {fmt(s['rho_high'])}] | "
        f"{fmt(s['noise_scale'])} [{fmt(s['noise_scale_low'])}, {fmt(s['noise_scale_high'])}] | "
        f"{batch} | {budget} | {run_snr(s['rho'], budget):.2f} "
        f"[{run_snr(s['rho_low'], budget):.2f}, {run_snr(s['rho_high'], budget):.2f}] |",
        "",
        f"\\|E g\\|² = {s['signal']:.4g}, E\\|g\\|² = {s['energy']:.4g} (decoder gradients of one "
        "prompt's rollout loss; 95 % bootstrap intervals over the prompts).",
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.num_threads)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    conf = load_config(args.config, EASPORecipeConfig)
    cfg, train = conf.rollout, conf.train
    tts = load_gradtts(args.model)
    scorer = target_scorer(load_emotion_logits(args.easpm, tts.emotions, cfg.judge))
    prompts = load_prompts(args.train_dir, args.feats_dir, tts, train.max_frames)
    params = freeze_for_easpo(tts.model)
    reference = frozen_reference(tts.model)
    grads = []
    for i in range(args.num_prompts):
        batch = prompt_batch(prompts, tts, 1, args.seed * 1_000_003 + i)
        out = easpo_rollout(
            tts.model, reference, scorer, batch.text, batch.text_lengths, batch.speaker,
            batch.emotion, cfg, torch.Generator().manual_seed(batch.seed),
        )  # fmt: skip
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(out.loss, params)]))
        if (i + 1) % 20 == 0 or i + 1 == args.num_prompts:
            log.info("%d/%d prompts", i + 1, args.num_prompts)
    stacked = torch.stack(grads).double()
    gram = (stacked @ stacked.T).numpy()
    summary = noise_summary(gram, args.bootstrap, args.seed)
    budget = train.num_steps * train.batch_size
    summary.update(prompts_per_step=train.batch_size, run_prompts=budget,
                   run_snr=run_snr(summary["rho"], budget))  # fmt: skip
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "gradient_noise.json").write_text(json.dumps(summary, indent=1) + "\n")
    title = f"EASPO gradient noise: {args.config} judged by {args.easpm} at {args.model}"
    write_table(args.out_dir / "gradient_noise.md", summary, budget, train.batch_size, title)
    log.info("noise scale B = %.3g prompts (run: %d prompts, SNR %.2f); wrote %s",
             summary["noise_scale"], budget, summary["run_snr"], args.out_dir)  # fmt: skip


if __name__ == "__main__":
    main()
