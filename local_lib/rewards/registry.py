"""One registry for every reward, so YAML can pick, weight and combine them by name.

A reward is a function ``fn(batch, refs, **options) -> Tensor`` giving one score per sequence
(``[B]``) or per token (``[B, T]``). Keyword-only parameters are filled from the YAML entry or,
for models such as the reward ASR, from the ``resources`` handed to :func:`build_rewards`.
A reward that fails or returns a non-finite score raises: a silent zero would train the
policy towards whatever broke the scorer.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

RewardFn = Callable[..., torch.Tensor]
_REGISTRY: dict[str, RewardFn] = {}


class RewardError(RuntimeError):
    """A reward could not be computed; the message names the reward (and utterance)."""


@dataclass
class RolloutBatch:
    """What the policy produced for ``B`` sequences (G per prompt, group-major): audio, or
    only the log-mel the tokenizer decoded (``wavs`` None) for rewards that read log-mel."""

    utt_ids: list[str]
    wavs: Sequence[np.ndarray | torch.Tensor] | None
    sample_rate: int
    speech_tokens: Sequence[torch.Tensor] | None = None
    mels: Sequence[torch.Tensor] | None = None  # [frames, n_mels] each, in ``mel_cfg``
    mel_cfg: Any = None  # local_lib.data.features.LogMelConfig of ``mels``


@dataclass
class RewardReferences:
    """What the rollouts are judged against: target texts plus labels per utterance
    (``extras``: speaker always; emotion, gender, language where the data dir has them)."""

    texts: list[str]
    extras: dict[str, list[Any]] = field(default_factory=dict)


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    def decorate(fn: RewardFn) -> RewardFn:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"reward {name!r} is already registered")
        _REGISTRY[name] = fn
        return fn

    return decorate


def registered_rewards() -> list[str]:
    return sorted(_REGISTRY)


@dataclass(frozen=True)
class RewardComponent:
    name: str
    weight: float
    fn: RewardFn
    options: Mapping[str, Any]

    def __call__(self, batch: RolloutBatch, refs: RewardReferences) -> torch.Tensor:
        try:
            scores = torch.as_tensor(self.fn(batch, refs, **self.options), dtype=torch.float32)
        except Exception as err:
            raise RewardError(
                f"reward {self.name!r} failed on {len(batch.utt_ids)} utterances "
                f"starting with {batch.utt_ids[:1]}: {err}"
            ) from err
        if scores.dim() == 0 or scores.shape[0] != len(batch.utt_ids):
            raise RewardError(
                f"reward {self.name!r} returned shape {tuple(scores.shape)} "
                f"for {len(batch.utt_ids)} utterances"
            )
        bad = (~torch.isfinite(scores)).reshape(scores.shape[0], -1).any(dim=1)
        if bad.any():
            idx = int(bad.nonzero()[0])
            raise RewardError(
                f"reward {self.name!r} is not finite for utterance {batch.utt_ids[idx]!r}: "
                f"{scores[idx].tolist()}"
            )
        return scores


@dataclass(frozen=True)
class RewardOutput:
    total: torch.Tensor
    components: dict[str, torch.Tensor]

    def stats(self) -> dict[str, float]:
        """Mean and std of each component and of the total, for the RL loop's log."""
        out = {}
        for name, values in {**self.components, "total": self.total}.items():
            out[f"reward/{name}_mean"] = float(values.mean())
            out[f"reward/{name}_std"] = float(values.std()) if values.numel() > 1 else 0.0
        return out


@dataclass(frozen=True)
class RewardSet:
    """Weighted components and how they combine: ``sum`` (sum of w*r) or ``harmonic``
    (``sum(w) / sum(w / r)``, the Llasa-GRPO weighted harmonic mean; needs r >= 0)."""

    components: tuple[RewardComponent, ...]
    combine: Literal["sum", "harmonic"]

    def __call__(self, batch: RolloutBatch, refs: RewardReferences) -> RewardOutput:
        if len(refs.texts) != len(batch.utt_ids):
            raise RewardError(
                f"{len(batch.utt_ids)} rollouts but {len(refs.texts)} reference texts"
            )
        scores = {c.name: c(batch, refs) for c in self.components}
        if self.combine == "sum":
            total = sum(c.weight * scores[c.name] for c in self.components)
        else:
            for c in self.components:
                negative = (scores[c.name] < 0).reshape(len(batch.utt_ids), -1).any(dim=1)
                if negative.any():
                    utt = batch.utt_ids[int(negative.nonzero()[0])]
                    raise RewardError(
                        f"harmonic combination needs reward {c.name!r} >= 0; "
                        f"utterance {utt!r} has a negative score"
                    )
            weight_sum = sum(c.weight for c in self.components)
            # w / 0 = inf gives total 0: the limit of the harmonic mean, not an error
            total = weight_sum / sum(c.weight / scores[c.name] for c in self.components)
        return RewardOutput(torch.as_tensor(total), scores)


def build_rewards(cfg: Mapping[str, Any], resources: Mapping[str, Any] | None = None) -> RewardSet:
    """Build from ``{combine: sum|harmonic, components: {name: {weight: w, option: v}}}``.

    Options must be keyword-only parameters of the reward; missing ones are taken from
    ``resources`` (e.g. ``scorer``). Anything unknown or missing is an error naming the reward.
    """
    resources = dict(resources or {})
    combine = cfg.get("combine", "sum")
    if combine not in ("sum", "harmonic"):
        raise ValueError(f"rewards.combine must be sum or harmonic, got {combine!r}")
    unknown_top = sorted(set(cfg) - {"combine", "components"})
    if unknown_top:
        raise ValueError(f"rewards: unknown key(s) {unknown_top}")
    entries = cfg.get("components") or {}
    if not isinstance(entries, Mapping) or not entries:
        raise ValueError("rewards.components must name at least one reward")
    components = []
    for name, entry in entries.items():
        if name not in _REGISTRY:
            raise ValueError(f"unknown reward {name!r}; registered: {registered_rewards()}")
        options = dict(entry or {})
        weight = float(options.pop("weight", 1.0))
        if weight <= 0 and combine == "harmonic":
            raise ValueError(f"reward {name!r}: harmonic combination needs weight > 0")
        components.append(
            RewardComponent(name, weight, _REGISTRY[name], _bind(name, options, resources))
        )
    return RewardSet(tuple(components), combine)


def _bind(name: str, options: dict[str, Any], resources: Mapping[str, Any]) -> dict[str, Any]:
    params = {
        p.name: p
        for p in inspect.signature(_REGISTRY[name]).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ValueError(f"reward {name!r}: unknown option(s) {unknown}; known: {sorted(params)}")
    bound = dict(options)
    for pname, param in params.items():
        if pname in bound:
            continue
        if pname in resources:
            bound[pname] = resources[pname]
        elif param.default is inspect.Parameter.empty:
            raise ValueError(f"reward {name!r} needs {pname!r} (YAML option or resource)")
    return bound
