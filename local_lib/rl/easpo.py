"""EASPO: stepwise emotional preference optimisation of a Grad-TTS decoder (docs/methods.md#easpo).

One rollout per call: the reverse chain runs from ``x_1 = μ + ε/temperature`` with the policy,
without branching for the first ``κ·N`` steps. At each *preference step* (``steps_per_chain``
steps drawn uniformly from the eligible ones) it draws ``k`` candidates
``x^j = m_θ(x_t) + √(hβ_t)·ε_j``, scores them with a scorer (EASPM), takes win = argmax and
lose = argmin, and adds a loss on the policy/reference log-likelihood ratios
``r = log p_θ(x^j|x_t) − log p_ref(x^j|x_t)``:

* ``spo``: ``−log σ(β(r_w − r_l))``;
* ``mse`` **[ours]**: ``(β(r_w − r_l) − (score_w − score_l))²``.

The chain then continues from a uniformly random candidate (``continuation: random``, the paper's
choice against collapse) or from the winner (``continuation: winner``, ablation). The rollout
stops after the last preference step: later steps carry no gradient. Only the decoder trains;
the encoder and duration predictor are frozen (``freeze_for_easpo``).

Where the scorer looks (``judge``): ``branch`` (the paper) scores the candidates themselves at
their state time; ``finished`` **[ours]** first finishes each candidate to ``t = 0`` with the
policy's deterministic ODE (no gradient) and scores the clean mel at ``t = 0``, so a scorer
trained on clean speech (an emotion classifier) can judge what the branch leads to. Either way
the loss is on the candidates' one-step log-likelihood ratios.

Eligible steps: step index ``i ≥ ceil(κN)`` whose state time ``1 − i/N`` lies in
``[t_min, t_max]`` (``t = 1`` is pure noise, ``t = 0`` clean mel).

Profile: a ``StepTimer`` gets the rollout's seconds in three parts: ``time/rollout`` (the prior,
the reverse chain up to each branch point, the candidate draws and the continuation),
``time/score`` (the scorer, and with ``judge: finished`` the finishing chains) and
``time/update`` (the policy's and reference's forward at each branch point, which give the
candidates' mean and their log-probabilities, the ratios and the loss; the Trainer adds the
backward and optimizer step to it).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from local_lib.models.gradtts import (
    GradTTS,
    log_ratio,
    prior_sample,
    reverse_diffusion,
    reverse_step,
    step_time,
    transition_mean,
)
from local_lib.rl.method_spec import MethodSpec
from local_lib.train.timing import UPDATE_KEY, StepTimer

METHOD = MethodSpec(family="gradtts", curve_keys=("score_gap", "loss", "acc"))

Scorer = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
"""``(mel [N, frames, n_mels], t [N], mask [N, frames], emotion [N]) -> score [N]``; higher is
better. ``EASPM.score`` has this signature."""

ROLLOUT_KEY, SCORE_KEY = "time/rollout", "time/score"
TIME_PARTS = (ROLLOUT_KEY, SCORE_KEY, UPDATE_KEY)
"""The parts of an EASPO step's seconds, logged per step and summarised at the end of a run."""

LOSS_FORMS = ("spo", "mse")
CONTINUATIONS = ("random", "winner")
JUDGES = ("branch", "finished")


@dataclass(frozen=True)
class EASPOConfig:
    """Options of one EASPO rollout (the optimiser's settings belong to the trainer)."""

    n_steps: int = 10
    k: int = 4
    kappa: float = 0.25
    t_min: float = 0.0
    t_max: float = 0.75
    steps_per_chain: int = 1
    beta: float = 1.0
    loss: str = "spo"
    continuation: str = "random"
    judge: str = "branch"
    temperature: float = 1.0
    length_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.n_steps < 1 or self.k < 2 or self.steps_per_chain < 1:
            raise ValueError(
                f"need n_steps >= 1, k >= 2, steps_per_chain >= 1; got {self.n_steps}, "
                f"{self.k}, {self.steps_per_chain}"
            )
        if not 0.0 <= self.kappa < 1.0 or not 0.0 <= self.t_min <= self.t_max <= 1.0:
            raise ValueError(
                f"need 0 <= kappa < 1 and 0 <= t_min <= t_max <= 1; got kappa={self.kappa}, "
                f"t_min={self.t_min}, t_max={self.t_max}"
            )
        if self.loss not in LOSS_FORMS:
            raise ValueError(f"loss must be one of {LOSS_FORMS}, got {self.loss!r}")
        if self.continuation not in CONTINUATIONS:
            raise ValueError(
                f"continuation must be one of {CONTINUATIONS}, got {self.continuation!r}"
            )
        if self.judge not in JUDGES:
            raise ValueError(f"judge must be one of {JUDGES}, got {self.judge!r}")
        if self.beta <= 0 or self.temperature <= 0 or self.length_scale <= 0:
            raise ValueError("beta, temperature and length_scale must be positive")
        if self.continuation == "winner" and self.steps_per_chain == 1:
            raise ValueError(
                "continuation: winner needs steps_per_chain > 1: the rollout stops after its "
                "last preference step, so with one step the continuation is never used"
            )
        n_eligible = len(eligible_steps(self))
        if n_eligible < self.steps_per_chain:
            raise ValueError(
                f"only {n_eligible} steps are eligible (n_steps={self.n_steps}, "
                f"kappa={self.kappa}, t in [{self.t_min}, {self.t_max}]) but "
                f"steps_per_chain={self.steps_per_chain}"
            )


def eligible_steps(cfg: EASPOConfig) -> list[int]:
    """Step indices that may branch: past the first ``ceil(κN)`` and with state time in range."""
    first = math.ceil(cfg.kappa * cfg.n_steps - 1e-9)
    return [
        i
        for i in range(first, cfg.n_steps)
        if cfg.t_min - 1e-9 <= 1.0 - i / cfg.n_steps <= cfg.t_max + 1e-9
    ]


def preference_steps(cfg: EASPOConfig, generator: torch.Generator | None = None) -> list[int]:
    """``steps_per_chain`` eligible steps drawn uniformly without replacement, sorted."""
    steps = eligible_steps(cfg)
    pick = torch.randperm(len(steps), generator=generator)[: cfg.steps_per_chain]
    return sorted(steps[i] for i in pick.tolist())


def draw_candidates(
    mean: Tensor,
    beta_t: float,
    h: float,
    k: int,
    mask: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``k`` draws from ``N(mean, hβ_t I)`` -> ``[k, B, frames, n_mels]`` (zero on padding)."""
    noise = torch.randn((k, *mean.shape), generator=generator, dtype=mean.dtype, device=mean.device)
    fmask = mask.to(mean.dtype).unsqueeze(-1)
    return (mean.unsqueeze(0) + math.sqrt(h * beta_t) * noise) * fmask


def select_pair(scores: Tensor) -> tuple[Tensor, Tensor]:
    """``[k, B]`` scores -> (winner, loser) candidate indices ``[B]``: argmax and argmin."""
    return scores.argmax(0), scores.argmin(0)


def take(candidates: Tensor, index: Tensor) -> Tensor:
    """Pick candidate ``index[b]`` for each item: ``[k, B, ...]``, ``[B]`` -> ``[B, ...]``."""
    batch = torch.arange(candidates.shape[1], device=candidates.device)
    return candidates[index, batch]


def choose_continuation(
    candidates: Tensor, winner: Tensor, mode: str, generator: torch.Generator | None = None
) -> Tensor:
    """State the chain continues from: a uniformly random candidate, or the winner (ablation)."""
    if mode == "winner":
        return take(candidates, winner)
    if mode == "random":
        k, batch = candidates.shape[:2]
        return take(candidates, torch.randint(k, (batch,), generator=generator).to(winner.device))
    raise ValueError(f"continuation must be one of {CONTINUATIONS}, got {mode!r}")


def preference_loss(
    r_win: Tensor,
    r_lose: Tensor,
    beta: float,
    form: str,
    score_win: Tensor | None = None,
    score_lose: Tensor | None = None,
) -> Tensor:
    """Per-item loss ``[B]``: SPO's ``−log σ(β(r_w − r_l))`` or squared error to the score gap."""
    margin = beta * (r_win - r_lose)
    if form == "spo":
        return -F.logsigmoid(margin)
    if form == "mse":
        if score_win is None or score_lose is None:
            raise ValueError("the mse form needs the winner's and loser's scores")
        return (margin - (score_win - score_lose)) ** 2
    raise ValueError(f"loss must be one of {LOSS_FORMS}, got {form!r}")


def finish_candidates(
    policy: GradTTS,
    candidates: Tensor,
    mu: Tensor,
    mask: Tensor,
    speaker: Tensor | None,
    emotion: Tensor,
    start: int,
    n_steps: int,
) -> Tensor:
    """``[k, B, frames, n_mels]`` candidates at step ``start`` -> their clean mels
    ``[k·B, frames, n_mels]`` (candidate-major, as the scorer sees them) by the policy's ODE."""
    k = candidates.shape[0]
    mu_k, mask_k, emotion_k = mu.repeat(k, 1, 1), mask.repeat(k, 1), emotion.repeat(k)
    speaker_k = None if speaker is None else speaker.repeat(k)

    def score_fn(x_t: Tensor, t: Tensor) -> Tensor:
        return policy.score(x_t, mu_k, mask_k, t, speaker_k, emotion_k)

    return reverse_diffusion(
        score_fn, candidates.flatten(0, 1), mu_k, mask_k, n_steps, policy.schedule, True, None,
        start,
    )  # fmt: skip


def freeze_for_easpo(model: GradTTS) -> list[nn.Parameter]:
    """Freeze encoder and duration predictor (dropout off), train the decoder; return its params."""
    model.encoder.requires_grad_(False)
    model.encoder.eval()
    model.decoder.requires_grad_(True)
    return list(model.decoder.parameters())


def frozen_reference(model: GradTTS) -> GradTTS:
    """A frozen copy of the starting policy (not to be saved with checkpoints)."""
    reference = copy.deepcopy(model)
    reference.requires_grad_(False)
    return reference.eval()


@dataclass
class EASPOOutput:
    """Mean loss over preference steps and items (backpropagate it) and logging scalars:
    ``score_gap`` (scorer's win − lose), ``ratio_mean``/``ratio_std`` (log-likelihood ratios of
    winners and losers), ``ratio_margin`` (mean ``r_w − r_l``), ``acc`` (fraction with
    ``r_w > r_l``: the policy already prefers the winner)."""

    loss: Tensor
    stats: dict[str, float] = field(default_factory=dict)


def easpo_rollout(
    policy: GradTTS,
    reference: GradTTS,
    scorer: Scorer,
    text: Tensor,
    text_lengths: Tensor,
    speaker: Tensor | None,
    emotion: Tensor,
    cfg: EASPOConfig,
    generator: torch.Generator | None = None,
    timer: StepTimer | None = None,
) -> EASPOOutput:
    """One EASPO rollout over a batch of texts with target emotions; see the module docstring.
    ``timer`` gets the seconds of its parts (``TIME_PARTS``)."""
    n, h = cfg.n_steps, 1.0 / cfg.n_steps
    schedule = policy.schedule
    timer = StepTimer() if timer is None else timer
    with timer(ROLLOUT_KEY), torch.no_grad():
        enc = policy.encode(text, text_lengths, speaker, emotion)
        mu, mask, _ = policy.expand_prior(enc, cfg.length_scale)
        x = prior_sample(mu, mask, cfg.temperature, generator)
    batch = x.shape[0]

    def policy_score(x_t: Tensor, t: Tensor) -> Tensor:
        return policy.score(x_t, mu, mask, t, speaker, emotion)

    chosen = preference_steps(cfg, generator)
    losses, ratios, margins, gaps = [], [], [], []
    for step in range(chosen[-1] + 1):
        if step not in chosen:
            with timer(ROLLOUT_KEY), torch.no_grad():
                x = reverse_step(policy_score, x, mu, mask, step, n, schedule, False, generator)
            continue
        t = step_time(step, n)
        beta_t = float(schedule.beta(t))
        t_batch = torch.full((batch,), t, dtype=x.dtype, device=x.device)
        with timer(UPDATE_KEY):
            mean_policy = transition_mean(x, mu, policy_score(x, t_batch), beta_t, h)
            with torch.no_grad():
                ref_score = reference.score(x, mu, mask, t_batch, speaker, emotion)
                mean_ref = transition_mean(x, mu, ref_score, beta_t, h)
        with timer(ROLLOUT_KEY), torch.no_grad():
            candidates = draw_candidates(mean_policy.detach(), beta_t, h, cfg.k, mask, generator)
        with timer(SCORE_KEY), torch.no_grad():
            judged, t_judged = candidates.flatten(0, 1), 1.0 - (step + 1) * h
            if cfg.judge == "finished":
                judged = finish_candidates(
                    policy, candidates, mu, mask, speaker, emotion, step + 1, n
                )
                t_judged = 0.0
            t_judge = torch.full((cfg.k * batch,), t_judged, dtype=x.dtype, device=x.device)
            scores = scorer(
                judged, t_judge, mask.repeat(cfg.k, 1), emotion.repeat(cfg.k)
            ).view(cfg.k, batch)
        with timer(UPDATE_KEY):
            win, lose = select_pair(scores)
            r_win = log_ratio(take(candidates, win), mean_policy, mean_ref, beta_t, h, mask)
            r_lose = log_ratio(take(candidates, lose), mean_policy, mean_ref, beta_t, h, mask)
            s_win, s_lose = take(scores, win), take(scores, lose)
            losses.append(preference_loss(r_win, r_lose, cfg.beta, cfg.loss, s_win, s_lose))
        ratios += [r_win.detach(), r_lose.detach()]
        margins.append((r_win - r_lose).detach())
        gaps.append(s_win - s_lose)
        with timer(ROLLOUT_KEY):
            x = choose_continuation(candidates, win, cfg.continuation, generator)
    with timer(UPDATE_KEY):
        loss = torch.stack(losses).mean()
    ratio, margin = torch.cat(ratios), torch.cat(margins)
    return EASPOOutput(
        loss=loss,
        stats={
            "loss": float(loss.detach()),
            "score_gap": float(torch.cat(gaps).mean()),
            "ratio_mean": float(ratio.mean()),
            "ratio_std": float(ratio.std(unbiased=False)),
            "ratio_margin": float(margin.mean()),
            "acc": float((margin > 0).double().mean()),
        },
    )
