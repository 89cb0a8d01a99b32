"""One way to read a YAML config into a typed dataclass, and to write the resolved one back.

Every tool reads its ``--config`` through ``load_config``, so a typo in a key, a string where a
number belongs or a value outside a ``Literal`` fails at start-up with the file and the dotted key,
not deep in torch. ``save_run_config`` puts the resolved config and the command beside a run's
outputs, so a system can be rebuilt and a changed config noticed.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import shlex
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from local_lib.atomic_io import write_text_atomic

T = TypeVar("T")

RUN_CONFIG = "config.yaml"
RUN_COMMAND = "command.sh"


class ConfigError(ValueError):
    """A config that cannot be used: the message names the file and the dotted key."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` as a float (YAML 1.1 needs a dot: ``1.0e-4``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(path: str | Path) -> dict:
    """The top-level mapping of a YAML file (``{}`` for an empty file)."""
    with Path(path).open(encoding="utf-8") as f:
        data = yaml.load(f, Loader=_Loader)  # _Loader is a SafeLoader
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {_kind(data)}")
    return data


def load_config(path: str | Path, cls: type[T]) -> T:
    return from_mapping(cls, load_yaml(path), str(path))


def from_mapping(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data``, checking every value against its annotation.

    Nested dataclass fields are built from nested mappings (an empty section, ``train:`` with
    nothing under it, takes all defaults); missing keys take the defaults.
    ``where`` (usually the file) starts every error message.
    """
    return _build(cls, data, where, "")


def _build(cls: type[T], data: Any, where: str, key: str) -> T:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: {key or 'top level'}: expected a mapping, got {_kind(data)}")
    prefix = f"{key}." if key else ""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = [str(k) for k in data if k not in fields]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(prefix + k for k in unknown)}; "
            f"known: {', '.join(prefix + k for k in fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {name: _convert(hints[name], data[name], where, prefix + name) for name in data}
    missing = [
        prefix + name
        for name, f in fields.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {key or cls.__name__}: {err}") from err


def _convert(tp: Any, value: Any, where: str, key: str) -> Any:
    """``value`` as annotation ``tp`` wants it (lists to tuples, ints to floats), else an error."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, {} if value is None else value, where, key)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where, key)
            except ConfigError:
                continue
    elif origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
    elif origin in (tuple, list):
        if isinstance(value, (list, tuple)):
            return origin(_convert_items(tp, value, where, key))
    elif origin in (dict, Mapping) or tp in (dict, Mapping):
        if isinstance(value, Mapping):
            return dict(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is Path:
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
    elif tp in (bool, str):
        if isinstance(value, tp):
            return value
    else:
        raise TypeError(f"{where}: {key}: annotation {tp!r} is not supported by local_lib.config")
    raise ConfigError(f"{where}: {key}: expected {_type_name(tp)}, got {_kind(value)} {value!r}")


def _convert_items(tp: Any, value: list | tuple, where: str, key: str) -> list:
    """Items of a YAML list for ``tuple[X, ...]``, ``tuple[X, Y]`` or ``list[X]``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is list or (len(args) == 2 and args[1] is Ellipsis):
        args = (args[0] if args else Any,) * len(value)
    elif len(args) != len(value):
        raise ConfigError(
            f"{where}: {key}: expected {len(args)} items, got {len(value)}: {value!r}"
        )
    pairs = enumerate(zip(args, value, strict=True))
    return [_convert(a, v, where, f"{key}[{i}]") for i, (a, v) in pairs]


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else repr(tp).replace("typing.", "")


def _kind(value: Any) -> str:
    return type(value).__name__


def to_mapping(cfg: Any) -> Any:
    """Plain YAML-ready data of ``cfg``: dataclasses in field order, tuples as lists, paths as
    strings; ``from_mapping`` of the result gives ``cfg`` back."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_mapping(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.init}
    if isinstance(cfg, Mapping):
        return {k: to_mapping(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_mapping(v) for v in cfg]
    if isinstance(cfg, Path):
        return str(cfg)
    return cfg


def differing_keys(
    a: dict[str, Any], b: dict[str, Any], exclude: tuple[str, ...] = ()
) -> list[str]:
    """Dotted paths of the values that differ, into nested mappings (``rollout.temperature``)."""
    out = []
    for key in sorted((set(a) | set(b)) - set(exclude)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += [f"{key}.{sub}" for sub in differing_keys(x, y)]
        elif x != y:
            out.append(key)
    return out


def lookup(mapping: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted path of ``differing_keys`` (None where a level is missing)."""
    for part in dotted.split("."):
        mapping = mapping.get(part) if isinstance(mapping, dict) else None
    return mapping


def save_run_config(out_dir: str | Path, cfg: Any, argv: list[str] | None = None) -> None:
    """Write ``config.yaml`` (the resolved ``cfg``, the same bytes for equal configs) and
    ``command.sh`` (``argv``, default this process's command line) into ``out_dir``."""
    out_dir = Path(out_dir)
    text = yaml.safe_dump(to_mapping(cfg), sort_keys=False, allow_unicode=True)
    write_text_atomic(out_dir / RUN_CONFIG, text)
    words = _own_command() if argv is None else argv
    stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    write_text_atomic(out_dir / RUN_COMMAND, f"# {stamp}  {os.getcwd()}\n{shlex.join(words)}\n")


def _own_command() -> list[str]:
    """This process's command line, as ``python -m <module> ...`` when started with ``-m``."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    program = ["-m", spec.name] if spec is not None else [sys.argv[0]]
    return ["python", *program, *sys.argv[1:]]
