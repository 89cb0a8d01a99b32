"""Recipe configs are copies of egs/TEMPLATE/conf: a change to one must reach the others."""

from __future__ import annotations

from pathlib import Path

import pytest

EGS = Path(__file__).resolve().parents[2] / "egs"
TEMPLATE = EGS / "TEMPLATE" / "conf"
# Per-corpus choices: the LibriTTS-trained evaluator ASR needs more epochs than ESD's.
SOURCE_OF = {
    ("libritts", "eval_asr_mini.yaml"): "eval_asr_mini_libritts.yaml",
    ("seedtts", "eval_asr_mini.yaml"): "eval_asr_mini_libritts.yaml",
}
RECIPE_CONFS = sorted(p for p in EGS.glob("*/*/conf/*.yaml") if p.parts[-4] != "TEMPLATE")


def test_every_recipe_has_configs():
    assert {p.parts[-4] for p in RECIPE_CONFS} == {"esd", "libritts", "seedtts"}


@pytest.mark.parametrize("conf", RECIPE_CONFS, ids=lambda p: "/".join(p.parts[-4:]))
def test_recipe_config_equals_its_template(conf: Path):
    corpus = conf.parts[-4]
    source = TEMPLATE / SOURCE_OF.get((corpus, conf.name), conf.name)
    assert source.exists(), f"{conf} has no template {source.name}"
    assert conf.read_text() == source.read_text(), f"{conf} differs from {source}"
