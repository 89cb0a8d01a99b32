"""Recipe configs are copies of egs/TEMPLATE/conf: a change to one must reach the others; every
config loads through local_lib.config as its tool reads it; and every evaluator and reward-ASR
config in egs/TEMPLATE/conf builds a model its tool can train."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from local_lib.bin.train_codec_lm import CodecLMConfig
from local_lib.bin.train_evaluator import EvaluatorRecipeConfig
from local_lib.bin.train_reward_codec import RewardCodecRecipeConfig
from local_lib.bin.train_reward_asr import RewardASRRecipeConfig
from local_lib.bin.train_token2text import Token2TextRecipeConfig
from local_lib.config import load_config, load_yaml
from local_lib.data.features import LogMelConfig
from local_lib.data.text_units import TokenListConfig
from local_lib.models.asr_units import AsrUnits
from local_lib.models.easpm_training import EASPMRecipeConfig
from local_lib.models.espnet_asr import EspnetRewardASR, build_espnet_asr
from local_lib.models.evaluator_nets import CtcASRNet, UtteranceClassifierNet
from local_lib.models.gradtts.recipe_config import GradTTSRecipeConfig
from local_lib.models.speech_tokenizer import SpeechTokenizerConfig
from local_lib.rl.diffro_loop import DiffROLoopConfig
from local_lib.rl.dpo_loop import DPOLoopConfig
from local_lib.rl.easpo_loop import EASPORecipeConfig
from local_lib.rl.hpro_loop import HPROLoopConfig
from local_lib.rl.w3ar_loop import W3ARLoopConfig

EGS = Path(__file__).resolve().parents[2] / "egs"
TEMPLATE = EGS / "TEMPLATE" / "conf"
# Per-corpus choices: the LibriTTS-trained evaluator ASR needs more epochs than ESD's.
SOURCE_OF = {
    ("libritts", "eval_asr_mini.yaml"): "eval_asr_mini_libritts.yaml",
    ("seedtts", "eval_asr_mini.yaml"): "eval_asr_mini_libritts.yaml",
    # ESD's codec LM (HPRO) is emotion-controlled
    **{("esd", f"codec_lm{s}.yaml"): f"codec_lm_esd{s}.yaml" for s in ("", "_mini", "_debug")},
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
# The class each config file is read as, by file name prefix.
CONFIG_CLASSES = {
    "codec_lm": CodecLMConfig,
    "diffro": DiffROLoopConfig,
    "dpo": DPOLoopConfig,
    "easpm": EASPMRecipeConfig,
    "easpo": EASPORecipeConfig,
    "emotion_clf": EvaluatorRecipeConfig,
    "eval_": EvaluatorRecipeConfig,
    "feats": LogMelConfig,
    "gradtts": GradTTSRecipeConfig,
    "hpro": HPROLoopConfig,
    "reward_asr": RewardASRRecipeConfig,
    "reward_codec": RewardCodecRecipeConfig,
    "reward_ctc": EvaluatorRecipeConfig,
    "speech_tokenizer": SpeechTokenizerConfig,
    "token2text": Token2TextRecipeConfig,
    "token_list": TokenListConfig,
    "w3ar": W3ARLoopConfig,
}


@pytest.mark.parametrize("conf", TEMPLATE_CONFS, ids=lambda p: p.name)
def test_template_config_loads_as_its_tool_reads_it(conf: Path):
    """Recipe configs are equal to these, so every recipe config loads too."""
    # the GRPO family's configs and best-of-N reward mappings: their own tests read them
    if conf.name.startswith(("grpo", "best_of_n")):
        assert load_yaml(conf)
        return
    classes = [cls for prefix, cls in CONFIG_CLASSES.items() if conf.name.startswith(prefix)]
    assert len(classes) == 1, f"{conf.name}: add the class it is read as to CONFIG_CLASSES"
    load_config(conf, classes[0])


@pytest.mark.parametrize(
    "conf",
    [p for p in TEMPLATE_CONFS if p.name.startswith(("eval_", "reward_ctc", "emotion_clf"))],
    ids=lambda p: p.name,
)
def test_evaluator_config_builds_a_model_that_runs(conf: Path):
    """Every key is one train_evaluator knows, and the network runs on 1 s of log-mel."""
    values = load_config(conf, EvaluatorRecipeConfig)
    mel_cfg, net_cfg = values.features, values.model
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
    cfg = load_config(conf, RewardASRRecipeConfig).model
    units = AsrUnits.from_texts(["a cat", "the dog"])
    torch.manual_seed(0)
    asr = EspnetRewardASR(build_espnet_asr(units, cfg), units, cfg)
    wavs = [np.random.default_rng(0).standard_normal(cfg.sample_rate).astype(np.float32) * 0.1]
    with torch.no_grad():
        assert torch.isfinite(asr.nll(wavs, ["a cat"])).all()
