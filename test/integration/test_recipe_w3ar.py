"""The W3AR recipe (egs/libritts/w3ar) end to end, stages 1-8, with the debug configs.

One run of ./run.sh --nj 2 --config_suffix _debug: stage 3 trains the ESPnet reward ASR, stage 5
chooses its attention heads (no heads file yet) and trains W3AR and its three ablations from
the one base; the tests then check what stage 5 left behind and that stage 8 reports every
system.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from recipe_sandbox import make_sandbox, run_recipe

from local_lib.bin.select_attention_heads import read_heads
from local_lib.config import load_yaml
from local_lib.models.codec_lm import CodecLM
from local_lib.train.trainer import read_metrics

# The generous limit only catches a hang on a shared, loaded CPU.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
SYSTEMS = ("w3ar", "w3ar_nopurity", "w3ar_nomono", "w3ar_nogroup")
SWITCHES = {
    "w3ar": (True, True, True), "w3ar_nopurity": (False, True, True),
    "w3ar_nomono": (True, False, True), "w3ar_nogroup": (True, True, False),
}  # fmt: skip


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> tuple[Path, str]:
    recipe_dir = make_sandbox(tmp_path_factory.mktemp("w3ar"), "libritts/w3ar")
    result = run_recipe(recipe_dir, "--nj", "2", "--config_suffix", "_debug", timeout=3600)
    print(f"libritts/w3ar stages 1-8 (debug configs) took {result.seconds:.1f} s")
    assert result.returncode == 0, result.output
    return recipe_dir, result.output


def test_every_stage_runs(recipe):
    _, output = recipe
    assert "not built yet" not in output
    assert "finished w3ar: stages 1 2 3 4 5 6 7 8" in output


def test_stage_5_chooses_the_reward_asrs_heads_once(recipe):
    recipe_dir, _ = recipe
    model = recipe_dir / "exp/reward_asr/model.pt"
    assert len(read_heads(model)) == 1  # heads_top_k of w3ar_debug.yaml
    table = (recipe_dir / "exp/reward_asr/model.pt.heads.md").read_text()
    assert table.count("| yes |") == 1
    # the systems train side by side: the first to take the lock chooses, the others read its file
    logs = {sys: (recipe_dir / f"exp/tts_{sys}/log/train.log").read_text() for sys in SYSTEMS}
    chose = [sys for sys, log in logs.items() if "choosing the heads on data/dev" in log]
    assert len(chose) == 1, chose
    for sys in set(SYSTEMS) - set(chose):
        assert "model.pt.heads.json)" in logs[sys], sys


@pytest.mark.parametrize("sys", SYSTEMS)
def test_stage_5_trains_each_system_from_the_base(recipe, sys):
    recipe_dir, _ = recipe
    base = CodecLM.from_pretrained(recipe_dir / "exp/tts_base/model")
    trained = CodecLM.from_pretrained(recipe_dir / f"exp/tts_{sys}/model")
    pairs = zip(base.model.parameters(), trained.model.parameters(), strict=True)
    assert any(not torch.equal(p, q) for p, q in pairs), f"{sys} left the base unchanged"
    records = read_metrics(recipe_dir / f"exp/tts_{sys}/metrics.jsonl")
    keys = {"loss", "reward/word", "reward/purity", "reward/monotonicity", "sft_ce", "kl"}
    assert keys <= set(records[-1]) and len(records) == 2
    r = load_yaml(recipe_dir / f"exp/tts_{sys}/config.yaml")["reward"]
    assert (r["use_purity"], r["use_monotonicity"], r["group_relative"]) == SWITCHES[sys]
    assert "--reward-model reward_asr=exp/reward_asr/model.pt" in (
        recipe_dir / f"exp/tts_{sys}/command.sh"
    ).read_text()


def test_stage_8_reports_w3ar_and_its_ablations(recipe):
    recipe_dir, _ = recipe
    report = (recipe_dir / "exp/report/REPORT.md").read_text()
    for name in ("natural", "tokenizer_resynth", "base", *SYSTEMS):
        assert name in report, name
    assert (recipe_dir / "exp/report/curves.png").is_file()
    reward_report = (recipe_dir / "exp/report_reward_asr/REPORT.md").read_text()
    assert all(sys in reward_report for sys in SYSTEMS)
    heads = json.loads((recipe_dir / "exp/reward_asr/model.pt.heads.json").read_text())
    assert heads["source"].endswith("utterances of data/dev")  # held-out natural speech


def test_the_reward_asr_view_has_attention_metrics_and_the_figure(recipe):
    recipe_dir, _ = recipe
    reward_report = (recipe_dir / "exp/report_reward_asr/REPORT.md").read_text()
    assert "attention purity" in reward_report and "attention monotonicity" in reward_report
    assert "figures/attention.png" in reward_report
    assert (recipe_dir / "exp/report_reward_asr/figures/attention.png").is_file()
    for sys in ("base", *SYSTEMS):
        header = (recipe_dir / f"exp/tts_{sys}/synth/test/reward_asr/scores.tsv").open().readline()
        assert {"attn_purity", "attn_monotonicity"} <= set(header.split()), sys
