"""DPO through its command and through the recipe.

train_dpo under utils/launch.sh with two gloo processes on the tiny random models of
test_grpo_ddp.py; then the GRPO recipe (egs/libritts/grpo) in a sandbox with ``--method dpo
--config_suffix _debug``, stages 1-8, as a user runs it (test_method_plugin.py does the same for
a toy method).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from recipe_sandbox import make_sandbox, run_recipe
from test_grpo_ddp import REPO, _inputs

from local_lib.models.codec_lm import CodecLM
from local_lib.train.trainer import read_metrics

# The recipe run is about as long as the GRPO debug run (test_recipe_grpo.py); the generous
# limit only catches a hang on a shared, loaded CPU.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]
CURVES = {"loss", "dpo/accuracy", "dpo/margin", "dpo/chosen_logratio", "dpo/rejected_logratio"}


def _changed(base_dir: Path, trained_dir: Path) -> bool:
    base, trained = CodecLM.from_pretrained(base_dir), CodecLM.from_pretrained(trained_dir)
    pairs = zip(base.model.parameters(), trained.model.parameters(), strict=True)
    return any(not torch.equal(p, q) for p, q in pairs)


def test_two_gloo_processes_train_and_write_the_model(tmp_path: Path) -> None:
    paths = _inputs(tmp_path)
    conf = yaml.safe_load((REPO / "egs/TEMPLATE/conf/dpo_debug.yaml").read_text())
    conf["rollout"]["max_new_tokens"] = 6
    conf["train"]["lr"] = 1e-2
    (tmp_path / "dpo.yaml").write_text(yaml.safe_dump(conf))
    out = tmp_path / "exp"
    cmd = [
        "bash", str(REPO / "utils" / "launch.sh"), "--nproc", "2", "--python", sys.executable, "--",
        "local_lib.bin.train_dpo", "--config", str(tmp_path / "dpo.yaml"), "--seed", "3",
        "--base-dir", str(tmp_path / "base"), "--tokenizer", str(tmp_path / "tokenizer.pt"),
        "--reward-model", f"reward_asr={tmp_path / 'asr.pt'}", "--train-dir", str(paths["data"]),
        "--tokens", str(tmp_path / "speech_tokens"), "--out-dir", str(out),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    for r in records:  # one text per rollout batch and rank: the counts are summed over ranks
        assert r["dpo/pairs"] + r["dpo/skipped_texts"] == r["dpo/draws"] >= 2
        assert CURVES | {"reward/mean", "reward/asr_wer"} <= set(r)
    assert _changed(tmp_path / "base", out / "model")
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["dpo"]["refresh_every"] == 1 and resolved["rollout"]["max_new_tokens"] == 6
    assert "local_lib.bin.train_dpo" in (out / "command.sh").read_text()


def test_the_grpo_recipe_runs_dpo_stages_1_to_8(tmp_path: Path) -> None:
    recipe_dir = make_sandbox(tmp_path, "libritts/grpo")
    run = run_recipe(
        recipe_dir, "--nj", "2", "--config_suffix", "_debug", "--method", "dpo", timeout=3600
    )
    print(f"libritts/grpo --method dpo: stages 1-8 (debug configs) took {run.seconds:.1f} s")
    assert run.returncode == 0, run.output
    assert "finished dpo: stages 1 2 3 4 5 6 7 8" in run.output
    assert "stage 5: train_dpo -> exp/tts_dpo " in run.output
    exp = recipe_dir / "exp"
    assert _changed(exp / "tts_base/model", exp / "tts_dpo/model")
    records = read_metrics(exp / "tts_dpo/metrics.jsonl")
    assert records[-1]["step"] == 2 and CURVES <= set(records[-1])
    command = (exp / "tts_dpo/log/train.log").read_text().splitlines()[0]
    assert "--config conf/dpo_debug.yaml" in command
    assert "--reward-model reward_ctc=exp/reward_ctc/model.pt" in command
    assert "dpo" in (exp / "report/REPORT.md").read_text()
    assert (exp / "report/curves.png").is_file()
