"""YAML config reading and log set-up shared by the training tools."""

import logging
from pathlib import Path

import yaml


def load_yaml_mapping(path: Path, allowed: set[str]) -> dict:
    """Top-level mapping of a YAML file; unknown keys are an error naming the file."""
    with Path(path).open(encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; known: {sorted(allowed)}")
    return data


def setup_logging(log_file: Path) -> None:
    """Log to stderr and to ``log_file`` (appending, so a resumed run keeps its history)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(log_file)],
        force=True,
    )
