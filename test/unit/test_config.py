"""The YAML -> dataclass layer: each type rule, every error's file and dotted key, the round trip
and the run record."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

import pytest

from local_lib.config import (
    ConfigError,
    differing_keys,
    from_mapping,
    load_config,
    load_yaml,
    lookup,
    save_run_config,
    to_mapping,
)
from local_lib.train.config import TrainSection
from local_lib.train.trainer import TrainerConfig


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["cosine", "constant"] = "cosine"

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass(frozen=True)
class Run:
    name: str
    steps: int = 10
    clip: float | None = 1.0
    dropout: Optional[float] = None  # noqa: UP007 - the typing spelling must work too
    debug: bool = False
    dims: tuple[int, ...] = (1, 2)
    layers: list[str] = field(default_factory=list)
    rewards: Mapping[str, Any] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    anything: Any = None
    data: Path = Path("data")
    train: Optim = Optim()


def build(data: dict) -> Run:
    return from_mapping(Run, data, "conf/x.yaml")


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        build(data)
    return str(info.value)


def test_defaults_fill_missing_keys_and_nested_sections() -> None:
    assert build({"name": "a"}) == Run(name="a")
    assert build({"name": "a", "train": None}) == Run(name="a")
    cfg = build({"name": "a", "train": {"lr": 3, "schedule": "constant"}})
    assert cfg.train == Optim(lr=3.0, schedule="constant")
    assert type(cfg.train.lr) is float


def test_int_rejects_bool_and_float() -> None:
    assert build({"name": "a", "steps": 7}).steps == 7
    assert error_of({"name": "a", "steps": True}) == (
        "conf/x.yaml: steps: expected int, got bool True"
    )
    assert error_of({"name": "a", "steps": 2.5}) == (
        "conf/x.yaml: steps: expected int, got float 2.5"
    )


def test_float_takes_ints_but_not_strings_or_bools() -> None:
    assert build({"name": "a", "train": {"lr": 2}}).train.lr == 2.0
    assert error_of({"name": "a", "train": {"lr": "1e-4x"}}) == (
        "conf/x.yaml: train.lr: expected float, got str '1e-4x'"
    )
    assert "train.lr: expected float, got bool" in error_of({"name": "a", "train": {"lr": False}})


def test_bool_and_str_are_exact() -> None:
    assert build({"name": "a", "debug": True}).debug is True
    assert error_of({"name": "a", "debug": 1}) == "conf/x.yaml: debug: expected bool, got int 1"
    assert error_of({"name": 5}) == "conf/x.yaml: name: expected str, got int 5"


def test_optional_takes_none_or_the_type() -> None:
    cfg = build({"name": "a", "clip": None, "dropout": 0})
    assert cfg.clip is None and cfg.dropout == 0.0 and type(cfg.dropout) is float
    assert error_of({"name": "a", "clip": "off"}) == (
        "conf/x.yaml: clip: expected float | None, got str 'off'"
    )
    message = error_of({"name": "a", "dropout": [1]})
    assert message == "conf/x.yaml: dropout: expected Optional[float], got list [1]"


def test_literal_accepts_only_its_values() -> None:
    assert error_of({"name": "a", "train": {"schedule": "linear"}}) == (
        "conf/x.yaml: train.schedule: expected Literal['cosine', 'constant'], got str 'linear'"
    )


def test_sequences_are_converted_and_checked_per_item() -> None:
    cfg = build({"name": "a", "dims": [4, 8, 16], "layers": ["x", "y"], "train": {"betas": [0, 1]}})
    assert cfg.dims == (4, 8, 16) and cfg.layers == ["x", "y"] and cfg.train.betas == (0.0, 1.0)
    assert error_of({"name": "a", "dims": [4, "8"]}) == (
        "conf/x.yaml: dims[1]: expected int, got str '8'"
    )
    assert error_of({"name": "a", "train": {"betas": [0.9]}}) == (
        "conf/x.yaml: train.betas: expected 2 items, got 1: [0.9]"
    )
    assert "dims: expected tuple[int, ...], got int 4" in error_of({"name": "a", "dims": 4})


def test_mappings_any_and_paths() -> None:
    rewards = {"wer": {"weight": 1}, "sim": 0.5}
    cfg = build({"name": "a", "rewards": rewards, "extra": {"k": [1]}, "anything": [1, "x"],
                 "data": "dump/x"})  # fmt: skip
    assert cfg.rewards == rewards and type(cfg.rewards) is dict
    assert cfg.extra == {"k": [1]} and cfg.anything == [1, "x"] and cfg.data == Path("dump/x")
    assert error_of({"name": "a", "rewards": ["wer"]}) == (
        "conf/x.yaml: rewards: expected Mapping[str, Any], got list ['wer']"
    )


def test_unknown_and_missing_keys_name_the_dotted_key() -> None:
    assert error_of({"name": "a", "train": {"lrr": 1}}) == (
        "conf/x.yaml: unknown key(s) train.lrr; known: train.lr, train.betas, train.schedule"
    )
    message = error_of({"name": "a", "stepz": 1})
    assert message.startswith("conf/x.yaml: unknown key(s) stepz; known: name, steps, clip")
    assert error_of({}) == "conf/x.yaml: missing key(s) name"
    assert error_of({"name": "a", "train": [1]}) == (
        "conf/x.yaml: train: expected a mapping, got list"
    )


def test_post_init_errors_name_the_file_and_section() -> None:
    assert error_of({"name": "a", "train": {"lr": -1}}) == (
        "conf/x.yaml: train: lr must be > 0, got -1.0"
    )
    with pytest.raises(ConfigError, match=r"^conf/t.yaml: TrainSection: num_steps must be >= 1"):
        from_mapping(TrainSection, {"num_steps": 0}, "conf/t.yaml")


def test_load_yaml_reads_exponents_without_a_dot_as_floats(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1e-4\nb: 5E-3\nc: -2e+1\nd: 1.0e4\ne: 1_000\nf: '1e-4'\ng: .5e1\n")
    assert load_yaml(path) == {"a": 0.0001, "b": 0.005, "c": -20.0, "d": 10000.0, "e": 1000,
                               "f": "1e-4", "g": 5.0}  # fmt: skip
    assert type(load_yaml(path)["e"]) is int
    path.write_text("")
    assert load_yaml(path) == {}
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: expected a mapping at the top level"):
        load_yaml(path)


def test_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: a\ntrain:\n  lr: 3e-4\n")
    assert load_config(path, Run) == Run(name="a", train=Optim(lr=3e-4))
    path.write_text("name: a\ntrain:\n  lr: 3e-4x\n")
    with pytest.raises(ConfigError, match=f"^{path}: train.lr: expected float, got str '3e-4x'$"):
        load_config(path, Run)


def test_to_mapping_round_trips() -> None:
    train = Optim(lr=0.5, betas=(0.8, 0.9), schedule="constant")
    cfg = Run(name="a", clip=None, dims=(3,), layers=["l"], rewards={"w": {"x": 1}},
              data=Path("d"), train=train)  # fmt: skip
    plain = to_mapping(cfg)
    assert list(plain) == ["name", "steps", "clip", "dropout", "debug", "dims", "layers", "rewards",
                           "extra", "anything", "data", "train"]  # fmt: skip
    assert plain["dims"] == [3] and plain["data"] == "d" and plain["train"]["betas"] == [0.8, 0.9]
    assert from_mapping(Run, plain, "x") == cfg


def test_save_run_config_writes_config_and_command(tmp_path: Path) -> None:
    cfg = Run(name="a", train=Optim(lr=1e-4))
    argv = ["python", "-m", "local_lib.bin.train_x", "--config", "conf/a b.yaml"]
    save_run_config(tmp_path / "one", cfg, argv)
    save_run_config(tmp_path / "two", Run(name="a"), argv)
    first = (tmp_path / "one" / "config.yaml").read_bytes()
    assert first == (tmp_path / "two" / "config.yaml").read_bytes()
    assert first.decode().startswith("name: a\nsteps: 10\nclip: 1.0\n")
    assert load_config(tmp_path / "one" / "config.yaml", Run) == cfg
    comment, command = (tmp_path / "one" / "command.sh").read_text().splitlines()
    assert comment.startswith("# 20") and comment.endswith(f"  {Path.cwd()}")
    assert shlex.split(command) == argv
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["command.sh", "config.yaml"]


def test_save_run_config_defaults_to_this_process(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["/x/train.py", "--seed", "1"])
    save_run_config(tmp_path, Run(name="a"))
    command = (tmp_path / "command.sh").read_text().splitlines()[1]
    assert shlex.split(command)[-2:] == ["--seed", "1"] and command.startswith("python ")


def test_train_section_maps_to_the_trainer() -> None:
    section = from_mapping(TrainSection, {"num_steps": 5, "grad_clip": None, "save_every": 2}, "t")
    assert section.trainer_config(Path("exp/x")) == TrainerConfig(
        out_dir=Path("exp/x"), num_steps=5, grad_accum=1, grad_clip=None, save_every=2,
        log_every=10, keep_checkpoints=2,
    )  # fmt: skip
    for bad in ({"lr": 0}, {"grad_accum": 0}, {"grad_clip": 0}, {"keep_checkpoints": -1}):
        with pytest.raises(ConfigError):
            from_mapping(TrainSection, bad, "t")


def test_differing_keys_name_nested_paths():
    old = {"n": 8, "seed": 0, "rollout": {"temperature": 0.6, "top_k": 0}, "base_dir": "a"}
    new = {"n": 8, "seed": 1, "rollout": {"temperature": 1.0, "top_k": 0}, "base_dir": "b"}
    assert differing_keys(old, new, exclude=("base_dir",)) == ["rollout.temperature", "seed"]
    assert lookup(new, "rollout.temperature") == 1.0 and lookup(new, "rollout.nope") is None
    assert differing_keys({"a": {"x": 1}}, {"a": 2}) == ["a"]  # a mapping against a value
