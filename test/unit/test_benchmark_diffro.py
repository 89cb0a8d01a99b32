"""The DiffRO-vs-GRPO step benchmark end to end on tiny random models: both methods sample the
same completions, every part of a step is timed, and the ratio line comes last."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from local_lib.bin import benchmark_diffro
from local_lib.data.features import LogMelConfig
from local_lib.data.kaldi_dir import write_kv
from local_lib.data.speech_tokens import write_speech_tokens
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.asr_units import AsrUnits
from local_lib.models.codec_lm import CodecLM
from local_lib.models.evaluator_nets import EvaluatorNetConfig
from local_lib.models.evaluators import build_evaluator
from local_lib.models.speech_tokenizer import KMeansMelTokenizer, SpeechTokenizerConfig
from local_lib.models.token2text import Token2Text, Token2TextConfig

REPO = Path(__file__).resolve().parents[2]
MEL = LogMelConfig(n_fft=256, win_length=256, hop_length=64, n_mels=16, f_max=8000.0)
TEXTS = {"a_1": "the cat", "a_2": "a mat", "b_1": "on the mat", "b_2": "the cat sat"}
TINY_LM = {
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
}  # fmt: skip


def _inputs(root: Path) -> list[str]:
    rng = np.random.default_rng(0)
    feats = [rng.normal(size=(40, MEL.n_mels)).astype(np.float32) for _ in range(4)]
    tok_cfg = SpeechTokenizerConfig(num_tokens=8, kmeans_iters=3, decoder_channels=8,
                                    decoder_layers=1, decoder_steps=2)  # fmt: skip
    KMeansMelTokenizer.train(feats, tok_cfg, MEL).save(root / "tokenizer.pt")
    torch.manual_seed(0)
    CodecLM.from_config(TINY_LM, CharTokenizer.build(TEXTS.values()), 8).save_pretrained(
        root / "base"
    )
    units = AsrUnits.from_texts(TEXTS.values())
    net_cfg = EvaluatorNetConfig(
        kind="asr", n_mels=MEL.n_mels, channels=8, conv_layers=1, embed_dim=8
    )
    state = {
        "kind": "evaluator",
        "net_config": dataclasses.asdict(net_cfg),
        "mel_config": dataclasses.asdict(MEL),
        "tokens": units.tokens,
    }
    state["model"] = build_evaluator(state).net.state_dict()
    torch.save(state, root / "asr.pt")
    t2t_cfg = Token2TextConfig(embed_dim=8, channels=8, conv_layers=1)
    token2text = Token2Text.build(t2t_cfg, 8, units, {"speaker": ["a", "b"]})
    torch.save(token2text.state(), root / "t2t.pt")
    data = root / "data"
    data.mkdir()
    write_kv(data / "text", TEXTS)
    write_kv(data / "utt2spk", {u: u[0] for u in TEXTS})
    write_speech_tokens(root / "speech_tokens", {u: [1, 2, 3, i] for i, u in enumerate(TEXTS)})
    grpo = yaml.safe_load((REPO / "egs/TEMPLATE/conf/grpo_debug.yaml").read_text())
    grpo["rollout"].update(group_size=2, prompts_per_step=2, max_new_tokens=8)
    (root / "grpo.yaml").write_text(yaml.safe_dump(grpo))
    return [
        "--grpo-config", str(root / "grpo.yaml"),
        "--diffro-config", str(REPO / "egs/TEMPLATE/conf/diffro_debug.yaml"),
        "--base-dir", str(root / "base"), "--tokenizer", str(root / "tokenizer.pt"),
        "--reward-asr", str(root / "asr.pt"), "--token2text", str(root / "t2t.pt"),
        "--data-dir", str(data), "--tokens", str(root / "speech_tokens"), "--steps", "2",
    ]  # fmt: skip


def test_benchmark_prints_both_step_costs_and_the_ratio(tmp_path, capsys) -> None:
    benchmark_diffro.main(_inputs(tmp_path))
    lines = capsys.readouterr().out.strip().splitlines()
    name, ratio = lines[-1].split("=")
    assert name == "diffro_step_speedup_vs_grpo" and float(ratio) > 0
    assert "2 timed steps (after 1 untimed) of 4 completions" in lines[0]
    table = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    assert set(table) == {
        "part (s per step)", "generate", "decode", "vocode", "reward", "update", "**step**"
    }  # fmt: skip
    grpo_vocode, diffro_vocode = (float(x) for x in table["vocode"].split("|")[2:4])
    assert diffro_vocode == 0.0 < grpo_vocode  # DiffRO renders no audio
    grpo_step, diffro_step = (float(x.strip(" *")) for x in table["**step**"].split("|")[2:4])
    assert float(ratio) == pytest.approx(grpo_step / diffro_step, rel=0.02, abs=0.01)
