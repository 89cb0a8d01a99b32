"""The ``token_text`` reward (DiffRO's Token2Text score on a sample's hard tokens) against a
brute-force CTC sum and the head's probabilities by hand; best_of_n loads Token2Text for it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from test_token2text import FRAME_PROBS, _brute_force_ctc, _fixed_model
from tiny_codec_models import TEXTS, write_tiny_models

from local_lib.bin import train_grpo
from local_lib.bin.train_grpo import reward_scorer
from local_lib.config import load_config, load_yaml
from local_lib.data.features import LogMelConfig
from local_lib.models.asr_units import AsrUnits
from local_lib.models.token2text import Token2Text, Token2TextConfig
from local_lib.rewards import RewardError, RewardReferences, RolloutBatch, build_rewards
from local_lib.rewards.token_rewards import token_text_reward
from local_lib.rl.grpo_loop import GRPOLoopConfig
from local_lib.train.trainer import read_metrics

BATCH = RolloutBatch(["u1", "u2"], None, 16000,
                     speech_tokens=[torch.tensor([1, 2, 3]), torch.tensor([0, 1])])  # fmt: skip
REFS = RewardReferences(["ab", "ab"], {"speaker": ["b", "a"]})


def test_text_per_unit_plus_weighted_label_by_hand() -> None:
    model = _fixed_model(FRAME_PROBS, [0.25, 0.75], upsample=1)  # units: a 2, b 3
    got = token_text_reward(BATCH, REFS, scorer=model, mtr={"speaker": 0.5})
    want = [
        math.log(_brute_force_ctc(FRAME_PROBS, 3, [2, 3])) / 2 + 0.5 * math.log(0.75),
        math.log(_brute_force_ctc(FRAME_PROBS, 2, [2, 3])) / 2 + 0.5 * math.log(0.25),
    ]
    assert got.tolist() == pytest.approx(want, rel=1e-5)
    text_only = build_rewards({"components": {"token_text": {}}}, {"scorer": model})(BATCH, REFS)
    assert text_only.total.tolist() == pytest.approx(
        [w - 0.5 * math.log(p) for w, p in zip(want, (0.75, 0.25))], rel=1e-5
    )


def test_errors_name_what_is_wrong() -> None:
    model = _fixed_model(FRAME_PROBS, [0.25, 0.75], upsample=1)
    with pytest.raises(ValueError, match="needs a Token2Text reward model"):
        token_text_reward(BATCH, REFS, scorer=object())
    with pytest.raises(ValueError, match="has none"):
        token_text_reward(RolloutBatch(["u"], None, 16000), REFS, scorer=model)
    with pytest.raises(ValueError, match=r"MTR head\(s\) \['emotion'\]"):
        token_text_reward(BATCH, REFS, scorer=model, mtr={"emotion": 1.0})
    rewards = build_rewards({"components": {"token_text": {"mtr": {"gender": 1.0}}}},
                            {"scorer": model})  # fmt: skip
    with pytest.raises(RewardError, match="gender"):
        rewards(BATCH, RewardReferences(["ab", "ab"], {"gender": ["f", "m"]}))


def test_best_of_n_loads_a_token2text_checkpoint(tmp_path) -> None:
    model = _fixed_model(FRAME_PROBS, [0.25, 0.75], upsample=1)
    torch.save(model.state(), tmp_path / "t2t.pt")
    loaded = reward_scorer("--reward-model", tmp_path / "t2t.pt", LogMelConfig(), "audio")
    assert isinstance(loaded, Token2Text)
    assert token_text_reward(BATCH, REFS, scorer=loaded).tolist() == pytest.approx(
        token_text_reward(BATCH, REFS, scorer=model).tolist()
    )


def test_the_recipe_mapping_builds_the_text_reward() -> None:
    conf = Path(__file__).resolve().parents[2] / "egs/TEMPLATE/conf/best_of_n_token_text.yaml"
    model = _fixed_model(FRAME_PROBS, [0.25, 0.75], upsample=1)
    total = build_rewards(load_yaml(conf), {"scorer": model})(BATCH, REFS).total
    assert total.tolist() == token_text_reward(BATCH, REFS, scorer=model).tolist()


def test_grpo_trains_on_the_token_reward_of_a_token2text_model(tmp_path) -> None:
    paths = write_tiny_models(tmp_path, group_size=2, prompts_per_step=1)
    conf = yaml.safe_load(paths["grpo"].read_text())
    conf["train"].update(num_steps=2, save_every=1, lr=1e-2)
    conf["rewards"] = {"components": {"token_text": {}}}
    paths["grpo"].write_text(yaml.safe_dump(conf))
    units = AsrUnits.from_texts(TEXTS.values())
    t2t = Token2Text.build(Token2TextConfig(embed_dim=8, channels=8, conv_layers=1), 8, units, {})
    torch.save(t2t.state(), tmp_path / "t2t.pt")
    out = tmp_path / "grpo"
    train_grpo.main([
        "--config", str(paths["grpo"]), "--out-dir", str(out), "--base-dir", str(paths["base"]),
        "--tokenizer", str(paths["tokenizer"]), "--train-dir", str(paths["data"]),
        "--tokens", str(paths["tokens"]), "--reward-model", f"token2text={tmp_path / 't2t.pt'}",
    ])  # fmt: skip
    records = read_metrics(out / "metrics.jsonl")
    assert len(records) == 2 and all(r["reward/mean"] < 0 for r in records)  # log-probs
    assert (out / "model").is_dir()


def test_the_grpo_config_on_the_token_reward_loads_and_builds() -> None:
    conf = Path(__file__).resolve().parents[2] / "egs/TEMPLATE/conf/grpo_t2t_mini.yaml"
    cfg = load_config(conf, GRPOLoopConfig)
    assert (cfg.rollout.reward_input, cfg.loss.beta) == ("mel", 0.1)
    model = _fixed_model(FRAME_PROBS, [0.25, 0.75], upsample=1)
    total = build_rewards(cfg.rewards, {"scorer": model})(BATCH, REFS).total
    assert total.tolist() == token_text_reward(BATCH, REFS, scorer=model).tolist()
