"""Recipe configs are copies of egs/TEMPLATE/conf: a change to one must reach the others; and
every evaluator and reward-ASR config in egs/TEMPLATE/conf builds a model its tool can train."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from local_lib.bin import train_evaluator, train_reward_asr
from local_lib.data.features import LogMelConfig
from local_lib.models.asr_units import AsrUnits
from local_lib.models.config_yaml import load_yaml_mapping
from local_lib.models.espnet_asr import EspnetASRConfig, EspnetRewardASR, build_espnet_asr
from local_lib.models.evaluator_nets import CtcASRNet, EvaluatorNetConfig, UtteranceClassifierNet
from local_lib.models.fit import TrainConfig

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


TEMPLATE_CONFS = sorted(TEMPLATE.glob("*.yaml"))


@pytest.mark.parametrize("conf", TEMPLATE_CONFS, ids=lambda p: p.name)
def test_template_config_is_a_mapping(conf: Path):
    assert isinstance(yaml.safe_load(conf.read_text()), dict), conf


@pytest.mark.parametrize(
    "conf",
    [p for p in TEMPLATE_CONFS if p.name.startswith(("eval_", "reward_ctc"))],
    ids=lambda p: p.name,
)
def test_evaluator_config_builds_a_model_that_runs(conf: Path):
    """Every key is one train_evaluator knows, and the network runs on 1 s of log-mel."""
    values = load_yaml_mapping(conf, train_evaluator.CONFIG_KEYS)
    TrainConfig.from_dict(values.get("train", {}))
    mel_cfg = LogMelConfig(**values.get("features", {}))
    net_cfg = EvaluatorNetConfig.from_dict({"kind": values["kind"], **values.get("model", {})})
    mel, lens = torch.randn(2, 100, mel_cfg.n_mels), torch.tensor([100, 60])
    with torch.no_grad():
        if net_cfg.kind == "asr":
            log_probs, out_lens = CtcASRNet(net_cfg, 30).eval()(mel, lens)
            assert log_probs.shape == (2, int(out_lens.max()), 30)
            assert out_lens.tolist() == [100 // net_cfg.subsample, 60 // net_cfg.subsample]
        else:
            logits, emb = UtteranceClassifierNet(net_cfg, 5).eval()(mel, lens)
            assert logits.shape == (2, 5) and emb.shape == (2, net_cfg.embed_dim)


@pytest.mark.parametrize(
    "conf", [p for p in TEMPLATE_CONFS if p.name.startswith("reward_asr")], ids=lambda p: p.name
)
def test_reward_asr_config_builds_a_model_that_scores(conf: Path):
    """Every key is one train_reward_asr knows, and the model gives a finite NLL."""
    values = load_yaml_mapping(conf, train_reward_asr.CONFIG_KEYS)
    TrainConfig.from_dict(values.get("train", {}))
    cfg = EspnetASRConfig.from_dict(values.get("model", {}))
    units = AsrUnits.from_texts(["a cat", "the dog"])
    torch.manual_seed(0)
    asr = EspnetRewardASR(build_espnet_asr(units, cfg), units, cfg)
    wavs = [np.random.default_rng(0).standard_normal(cfg.sample_rate).astype(np.float32) * 0.1]
    with torch.no_grad():
        assert torch.isfinite(asr.nll(wavs, ["a cat"])).all()
