"""Does EASPM's pick between EASPO candidates show in the finished speech? (diagnostic)

    python -m local_lib.bin.easpm_agreement --config conf/easpo_mini.yaml \\
        --model exp/tts_base/model.pt --easpm exp/easpm/model.pt \\
        --emotion exp/eval_emotion/model.pt --data-dir data/dev \\
        --feats-config conf/feats.yaml --out-dir exp/easpm_agreement [--num-prompts 30]

EASPO can only move the evaluator's emotion scores if the candidate EASPM prefers at a branching
step leads to speech the evaluator also finds more emotional. For each of ``--num-prompts`` evenly
spaced utterances of ``--data-dir`` (its text, speaker and target emotion) and each branching step
i (``--steps``; default: every step the rollout config makes eligible), the model's SDE chain runs
to step i, draws ``k`` candidates from its Gaussian transition and scores them with EASPM at the
candidates' time, exactly as a rollout does (with the config's ``judge: finished`` [ours], the
preference model given as ``--easpm``, e.g. an emotion classifier, scores the ODE-finished mels
instead, as that rollout does). Every candidate is then finished to t = 0 (the ODE
by default, as stage 6 synthesises), and the winner (argmax) is compared with the loser (argmin):

* ``final_gap``: EASPM's score of the finished mels, winner − loser (does EASPM agree with
  its own early pick?);
* ``evaluator_gap``: the emotion evaluator's probability of the target emotion on the vocoded
  audio, winner − loser (does the evaluator agree?);
* ``easpm_correct``, ``evaluator_correct``: the fraction of the finished candidates each one
  labels with the target emotion (is there headroom a reward could use?);
* ``evaluator_headroom``, ``accuracy_headroom``: what the evaluator's own pick among the k
  gains over a random one, in its P(target) and in its accuracy: the most any preference model
  could gain at this branch, however well it judged (is there diversity to choose from?).

Writes ``agreement.tsv`` (a row per prompt and step, appended as prompts finish; a re-run skips
the prompts it holds) and ``agreement.md`` (per step: how often each gap is positive, with 95 %
bootstrap intervals over prompts, a tie counting as disagreement; and both accuracies).
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from local_lib.bin.synth_gradtts import utterance_seed
from local_lib.config import load_config
from local_lib.data.features import LogMelConfig
from local_lib.eval.bootstrap import bootstrap_interval
from local_lib.eval.picks import evenly_spaced
from local_lib.models.config_yaml import setup_logging
from local_lib.models.evaluators import ClassifierEvaluator, load_evaluator
from local_lib.models.gradtts import (
    GradTTSBundle,
    load_gradtts,
    prior_sample,
    reverse_diffusion,
    reverse_step,
    step_time,
    transition_mean,
)
from local_lib.models.gradtts.data import load_tts_items
from local_lib.models.vocoder import GriffinLimVocoder
from local_lib.rl.easpo import EASPOConfig, Scorer, draw_candidates, eligible_steps, select_pair
from local_lib.rl.easpo_loop import (
    EASPORecipeConfig,
    EmotionLogits,
    load_emotion_logits,
    target_scorer,
)

log = logging.getLogger("easpm_agreement")

Judge = Callable[[Tensor, str], tuple[Tensor, Tensor]]
"""``(finished mels [k, frames, n_mels], target emotion) -> (score [k], correct [k])``: how strongly
each finished candidate shows the target emotion, and whether the judge's top label is it."""


@dataclass(frozen=True)
class Branch:
    """One branching step of one prompt: the candidates' EASPM scores and what became of them."""

    step: int
    t: float  # state time of the candidates (1 = noise, 0 = clean)
    score_spread: float  # standard deviation of EASPM's scores over the k candidates
    score_gap: float  # EASPM at the branch, winner − loser (>= 0 by construction)
    final_gap: float  # EASPM on the finished mels, winner − loser
    evaluator_gap: float  # evaluator P(target emotion), winner − loser
    easpm_correct: float  # fraction of the finished candidates EASPM labels as the target
    evaluator_correct: float  # the same for the evaluator
    evaluator_headroom: float  # evaluator P(target): best of the k − their mean
    accuracy_headroom: float  # evaluator label right: any of the k − their mean


@torch.no_grad()
def branch_outcomes(
    bundle: GradTTSBundle,
    scorer: Scorer,
    easpm_judge: Judge,
    evaluator_judge: Judge,
    text: str,
    speaker: str,
    emotion: str,
    cfg: EASPOConfig,
    steps: Sequence[int],
    finish_ode: bool,
    generator: torch.Generator,
) -> list[Branch]:
    """A fresh chain per step in ``steps``: run to it, branch into ``cfg.k`` candidates, finish
    each, compare winner and loser."""
    model = bundle.model
    n, h, k = cfg.n_steps, 1.0 / cfg.n_steps, cfg.k
    ids, lengths = bundle.encode_texts([text])
    spk = torch.tensor([bundle.speaker_id(speaker)])
    emo = torch.tensor([bundle.emotion_id(emotion)])
    enc = model.encode(ids, lengths, spk, emo)
    mu, mask, _ = model.expand_prior(enc, cfg.length_scale)
    mu_k, mask_k, emo_k = mu.expand(k, -1, -1), mask.expand(k, -1), emo.expand(k)

    def score_fn(x: Tensor, t: Tensor) -> Tensor:
        b = x.shape[0]
        mu_b, mask_b = mu.expand(b, -1, -1), mask.expand(b, -1)
        return model.score(x, mu_b, mask_b, t, spk.expand(b), emo.expand(b))

    out = []
    for step in steps:
        x = prior_sample(mu, mask, cfg.temperature, generator)
        for i in range(step):
            x = reverse_step(score_fn, x, mu, mask, i, n, model.schedule, False, generator)
        t_step = step_time(step, n)
        beta_t = float(model.schedule.beta(t_step))
        mean = transition_mean(x, mu, score_fn(x, torch.tensor([t_step])), beta_t, h)
        candidates = draw_candidates(mean, beta_t, h, k, mask, generator)[:, 0]
        t_next = 1.0 - (step + 1) * h
        finished = reverse_diffusion(
            score_fn, candidates, mu_k, mask_k, n, model.schedule, finish_ode, generator, step + 1
        )
        if cfg.judge == "finished":  # the rollout finishes by the ODE, whatever --finish says
            judged = finished if finish_ode else reverse_diffusion(
                score_fn, candidates, mu_k, mask_k, n, model.schedule, True, None, step + 1
            )  # fmt: skip
            scores = scorer(judged, torch.zeros(k), mask_k, emo_k)
        else:
            scores = scorer(candidates, torch.full((k,), t_next), mask_k, emo_k)
        win, lose = (int(i) for i in select_pair(scores[:, None]))
        final, easpm_correct = easpm_judge(finished, emotion)
        prob, evaluator_correct = evaluator_judge(finished, emotion)
        out.append(
            Branch(
                step=step,
                t=t_next,
                score_spread=float(scores.std(unbiased=False)),
                score_gap=float(scores[win] - scores[lose]),
                final_gap=float(final[win] - final[lose]),
                evaluator_gap=float(prob[win] - prob[lose]),
                easpm_correct=float(easpm_correct.double().mean()),
                evaluator_correct=float(evaluator_correct.double().mean()),
                evaluator_headroom=float(prob.max() - prob.double().mean()),
                accuracy_headroom=float(
                    evaluator_correct.double().max() - evaluator_correct.double().mean()
                ),
            )
        )
    return out


def scorer_judge(logits: EmotionLogits, emotions: list[str]) -> Judge:
    """The preference model on clean mels (t = 0): the target's score (the rollout's) and whether
    the target is its best-scoring emotion among the TTS model's ``emotions``."""

    def judge(mels: Tensor, emotion: str) -> tuple[Tensor, Tensor]:
        t, mask = torch.zeros(mels.shape[0]), torch.ones(mels.shape[:2], dtype=torch.bool)
        scores = logits(mels, t, mask)
        target = emotions.index(emotion)
        return scores[:, target], scores.argmax(-1) == target

    return judge


def evaluator_judge(
    evaluator: ClassifierEvaluator, vocoder: GriffinLimVocoder, hop_length: int
) -> Judge:
    """Vocode each finished mel as stage 6 does; the evaluator's target posterior and label."""

    def judge(mels: Tensor, emotion: str) -> tuple[Tensor, Tensor]:
        if emotion not in evaluator.labels:
            raise ValueError(f"emotion {emotion!r} is not an evaluator label {evaluator.labels}")
        wavs = [vocoder(m.numpy(), length=(m.shape[0] - 1) * hop_length) for m in mels]
        posteriors = evaluator.posteriors(wavs)
        target = evaluator.labels.index(emotion)
        return posteriors[:, target], posteriors.argmax(-1) == target

    return judge


COLUMNS = ["utt", "emotion", *(f.name for f in fields(Branch))]


def read_done(tsv: Path) -> set[str]:
    if not tsv.is_file():
        return set()
    with tsv.open() as f:
        reader = csv.DictReader(f, delimiter="\t")
        if reader.fieldnames != COLUMNS:
            raise ValueError(
                f"{tsv}: columns {reader.fieldnames} are not this version's {COLUMNS}; "
                "move it away to start afresh"
            )
        return {row["utt"] for row in reader}


def _mean_with_interval(values: list[float], fmt: str) -> str:
    """``mean [low, high]`` (95 % bootstrap over the rows); a non-finite value shows as the bare
    mean (nan) rather than failing the whole table."""
    if not np.all(np.isfinite(values)):
        return f"{np.mean(values):{fmt}}"
    ci = bootstrap_interval(values)
    return f"{ci.estimate:{fmt}} [{ci.low:{fmt}}, {ci.high:{fmt}}]"


def summarise(tsv: Path) -> str:
    """Markdown table per step (and all steps): agreement rates with bootstrap intervals."""
    with tsv.open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        raise ValueError(f"{tsv}: no rows to summarise")
    lines = [
        "| step | t | prompts | scorer spread | scorer agrees with itself, % | "
        "evaluator agrees, % | mean evaluator gap | scorer accuracy, % | evaluator accuracy, % | "
        "evaluator's own pick − random: P(target) | … accuracy, points |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups = sorted({int(r["step"]) for r in rows})
    for step in [*groups, None]:
        sel = [r for r in rows if step is None or int(r["step"]) == step]
        cells = []
        for key in ("final_gap", "evaluator_gap"):
            ci = bootstrap_interval([float(float(r[key]) > 0) for r in sel])
            cells.append(f"{100 * ci.estimate:.0f} [{100 * ci.low:.0f}, {100 * ci.high:.0f}]")
        name = "all" if step is None else str(step)
        t = "" if step is None else f"{float(sel[0]['t']):.2f}"
        spread, gap, easpm_acc, evaluator_acc = (
            np.mean([float(r[key]) for r in sel])
            for key in ("score_spread", "evaluator_gap", "easpm_correct", "evaluator_correct")
        )
        room = _mean_with_interval([float(r["evaluator_headroom"]) for r in sel], "+.3f")
        acc_room = _mean_with_interval([100 * float(r["accuracy_headroom"]) for r in sel], "+.1f")
        lines.append(
            f"| {name} | {t} | {len(sel)} | {spread:.3f} | {cells[0]} | {cells[1]} | {gap:+.3f} "
            f"| {100 * easpm_acc:.0f} | {100 * evaluator_acc:.0f} | {room} | {acc_room} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", type=Path, required=True, help="conf/easpo*.yaml (rollout section)")
    p.add_argument("--model", type=Path, required=True, help="Grad-TTS model.pt (base or tuned)")
    p.add_argument("--easpm", type=Path, required=True, help="exp/easpm/model.pt or a classifier")
    p.add_argument("--emotion", type=Path, required=True, help="emotion evaluator model.pt")
    p.add_argument("--data-dir", type=Path, required=True, help="prompts: text, utt2spk, utt2emo")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--feats-config", type=Path, default=None, help="LogMelConfig YAML")
    p.add_argument("--num-prompts", type=int, default=30)
    p.add_argument("--steps", type=int, nargs="+", default=None, help="default: eligible steps")
    p.add_argument("--finish", choices=("ode", "sde"), default="ode")
    p.add_argument("--vocoder-iters", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.num_prompts < 1:
        p.error(f"--num-prompts must be at least 1, got {args.num_prompts}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.num_threads)
    setup_logging(args.out_dir / "log" / "easpm_agreement.log")
    cfg = load_config(args.config, EASPORecipeConfig).rollout
    steps = args.steps if args.steps is not None else eligible_steps(cfg)
    bad = [s for s in steps if not 0 <= s < cfg.n_steps]
    if bad or not steps:
        raise ValueError(f"--steps must lie in [0, {cfg.n_steps}) ({args.config}), got {steps}")
    feats = LogMelConfig.from_yaml(args.feats_config) if args.feats_config else LogMelConfig()
    bundle = load_gradtts(args.model)
    bundle.model.eval()
    logits = load_emotion_logits(args.easpm, bundle.emotions, cfg.judge)
    scorer = target_scorer(logits)
    evaluator = load_evaluator(args.emotion)
    if not isinstance(evaluator, ClassifierEvaluator):
        raise ValueError(f"{args.emotion}: not an emotion evaluator")
    judges = (
        scorer_judge(logits, bundle.emotions),
        evaluator_judge(
            evaluator, GriffinLimVocoder(feats, n_iter=args.vocoder_iters), feats.hop_length
        ),
    )
    if not (args.data_dir / "utt2emo").is_file():
        raise ValueError(f"{args.data_dir}: no utt2emo (each prompt's target emotion)")
    items = load_tts_items(args.data_dir)
    unknown = sorted(set(items.emotions) - set(evaluator.labels))
    if unknown:
        raise ValueError(
            f"{args.emotion}: labels {evaluator.labels} lack the emotions {unknown} of "
            f"{args.data_dir}; is it the emotion evaluator?"
        )
    chosen = evenly_spaced(len(items.utts), args.num_prompts)
    tsv = args.out_dir / "agreement.tsv"
    done = read_done(tsv)
    new_file = not tsv.is_file()
    with tsv.open("a", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, delimiter="\t")
        if new_file:
            writer.writeheader()
        for n, i in enumerate(chosen, 1):
            utt = items.utts[i]
            if utt in done:
                continue
            try:
                branches = branch_outcomes(
                    bundle, scorer, *judges, items.texts[i], items.speakers[i],
                    items.emotions[i], cfg, steps, args.finish == "ode",
                    torch.Generator().manual_seed(utterance_seed(args.seed, utt)),
                )  # fmt: skip
            except ValueError as err:
                raise ValueError(f"{args.data_dir}: {utt}: {err}") from err
            for b in branches:
                writer.writerow({"utt": utt, "emotion": items.emotions[i], **asdict(b)})
            f.flush()
            log.info("prompt %d/%d (%s) done", n, len(chosen), utt)
    table = summarise(tsv)
    (args.out_dir / "agreement.md").write_text(
        f"# The scorer's branch picks vs the finished speech\n\n{args.model}, scorer "
        f"{args.easpm}, {args.config}, {args.data_dir}, finish by {args.finish}\n\n{table}"
    )
    log.info("wrote %s\n%s", args.out_dir / "agreement.md", table)


if __name__ == "__main__":
    main()
