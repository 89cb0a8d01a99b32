"""train_grpo under utils/launch.sh with two gloo processes, on tiny random models on disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from local_lib.data.features import LogMelConfig
from local_lib.data.kaldi_dir import write_kv
from local_lib.data.speech_tokens import write_speech_tokens
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.asr_units import AsrUnits
from local_lib.models.codec_lm import CodecLM
from local_lib.models.espnet_asr import EspnetASRConfig, EspnetRewardASR, build_espnet_asr
from local_lib.models.speech_tokenizer import KMeansMelTokenizer, SpeechTokenizerConfig
from local_lib.train.trainer import read_metrics

REPO = Path(__file__).resolve().parents[2]
TEXTS = {"a_1": "the cat sat", "a_2": "a mat", "b_1": "on the mat", "b_2": "the cat"}


def _inputs(root: Path) -> dict[str, Path]:
    """Base LM, speech tokenizer, reward ASR, data dir and tokens, all tiny and random."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(40, 80)).astype(np.float32) for _ in range(4)]
    tok_cfg = SpeechTokenizerConfig(num_tokens=8, kmeans_iters=2, decoder_channels=8,
                                    decoder_layers=1, decoder_steps=1)  # fmt: skip
    KMeansMelTokenizer.train(feats, tok_cfg, LogMelConfig()).save(root / "tokenizer.pt")
    lm_cfg = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "num_key_value_heads": 1,
              "max_position_embeddings": 128}  # fmt: skip
    lm = CodecLM.from_config(lm_cfg, CharTokenizer.build(TEXTS.values()), 8)
    lm.save_pretrained(root / "base")
    units = AsrUnits.from_texts(TEXTS.values())
    asr_cfg = EspnetASRConfig(
        d_model=16, heads=2, ffn=32, encoder_layers=1, decoder_layers=1, dropout=0.0
    )
    asr = EspnetRewardASR(build_espnet_asr(units, asr_cfg), units, asr_cfg)
    torch.save(asr.checkpoint(), root / "asr.pt")
    data = root / "data"
    data.mkdir()
    write_kv(data / "text", TEXTS)
    write_kv(data / "utt2spk", {u: u[0] for u in TEXTS})
    write_speech_tokens(root / "speech_tokens", {u: [1, 2, 3, i] for i, u in enumerate(TEXTS)})
    conf = yaml.safe_load((REPO / "egs" / "TEMPLATE" / "conf" / "grpo_debug.yaml").read_text())
    conf["rollout"]["max_new_tokens"] = 6
    conf["train"]["lr"] = 1e-2
    (root / "grpo.yaml").write_text(yaml.safe_dump(conf))
    return {"data": data, "conf": root / "grpo.yaml"}


@pytest.mark.slow
def test_two_gloo_processes_train_and_write_the_model(tmp_path: Path) -> None:
    paths = _inputs(tmp_path)
    out = tmp_path / "exp"
    cmd = [
        "bash", str(REPO / "utils" / "launch.sh"), "--nproc", "2", "--python", sys.executable, "--",
        "local_lib.bin.train_grpo", "--config", str(paths["conf"]), "--seed", "3",
        "--base-dir", str(tmp_path / "base"), "--tokenizer", str(tmp_path / "tokenizer.pt"),
        "--reward-model", f"reward_asr={tmp_path / 'asr.pt'}", "--train-dir", str(paths["data"]),
        "--tokens", str(tmp_path / "speech_tokens"), "--out-dir", str(out),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    # one group per rank and step: the logged count is summed over both ranks
    assert all(0 <= r["zero_var_groups"] <= 2 for r in records)
    logged = {"reward/mean", "reward/asr_wer", "reward/asr_nll", "clip_frac", "time/generate"}
    assert logged <= set(records[0])
    trained = CodecLM.from_pretrained(out / "model")
    base = CodecLM.from_pretrained(tmp_path / "base")
    pairs = zip(trained.model.parameters(), base.model.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)
    # the run records what made it: the resolved config (defaults filled in) and the command
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["rollout"]["max_new_tokens"] == 6 and resolved["train"]["lr"] == 1e-2
    assert resolved["loss"]["max_completion_length"] == 6
    assert "local_lib.bin.train_grpo" in (out / "command.sh").read_text()
