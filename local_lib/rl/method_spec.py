"""How the recipes find a post-training method: by its name, with no shared file to edit.

A method ``m`` exists when ``local_lib/rl/m.py`` defines a module-level ``METHOD`` holding a
:class:`MethodSpec`. Its model family says which stages file of ``egs/TEMPLATE`` runs it, and
stage 5 of that family runs ``python -m local_lib.bin.train_m`` for the method and each of its
variants (a variant only changes the config)::

    METHOD = MethodSpec(family="codec_lm", curve_keys=("reward/mean", "kl"))
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Literal, get_args

import local_lib.rl

Family = Literal["codec_lm", "gradtts"]
FAMILIES: tuple[str, ...] = get_args(Family)


@dataclass(frozen=True)
class MethodSpec:
    """What the recipe needs to know about a method beyond its ``train_<method>`` entry point.

    ``family``: the TTS model it post-trains (``egs/TEMPLATE/stages_<family>.sh``).
    ``curve_keys``: the ``metrics.jsonl`` keys stage 8 plots, in order (those no run logged are
    left out; none at all: every logged key).
    ``reward_asr_view``: the method's first reward model is an ASR that reads audio, so stages
    7-8 also score every system's test audio with it (the reward model's view beside the
    evaluators'); False for a reward that reads something else (DiffRO's speech tokens).
    """

    family: Family
    curve_keys: tuple[str, ...] = ()
    reward_asr_view: bool = True

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family {self.family!r}: expected one of {', '.join(FAMILIES)}")
        for key in self.curve_keys:
            if not key or any(c.isspace() for c in key):
                raise ValueError(f"curve key {key!r}: expected a non-empty key without spaces")


class UnknownMethodError(LookupError):
    """No ``local_lib/rl/<name>.py`` with a ``METHOD`` spec."""


def _spec_of(module_name: str) -> MethodSpec | None:
    spec = getattr(importlib.import_module(module_name), "METHOD", None)
    return spec if isinstance(spec, MethodSpec) else None


def known_methods() -> list[str]:
    """The names of the modules of ``local_lib/rl`` that define ``METHOD``, sorted."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules(local_lib.rl.__path__)
        if _spec_of(f"local_lib.rl.{info.name}") is not None
    )


def find_method(name: str) -> MethodSpec:
    """The spec of method ``name``; :class:`UnknownMethodError` naming the known ones if none.

    A module that exists but fails to import raises its own error: a broken method is not an
    unknown one.
    """
    module_name = f"local_lib.rl.{name}"
    spec = None
    if name.isidentifier():
        try:
            spec = _spec_of(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
    if spec is None:
        raise UnknownMethodError(f"unknown method {name!r}; known: {' '.join(known_methods())}")
    return spec
