"""The reward-path benchmark end to end on tiny random models: both paths time every part of a
step, pair the rewards of the same completions, and end with the ratio line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from local_lib.bin import benchmark_reward_path
from local_lib.data.features import LogMelConfig
from local_lib.data.kaldi_dir import write_kv
from local_lib.data.speech_tokens import write_speech_tokens
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.asr_units import AsrUnits
from local_lib.models.codec_lm import CodecLM
from local_lib.models.evaluator_nets import EvaluatorNetConfig
from local_lib.models.evaluators import build_evaluator
from local_lib.models.speech_tokenizer import KMeansMelTokenizer, SpeechTokenizerConfig

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
    net_cfg = EvaluatorNetConfig(
        kind="asr", n_mels=MEL.n_mels, channels=8, conv_layers=1, embed_dim=8
    )
    state = {
        "kind": "evaluator",
        "net_config": dataclasses.asdict(net_cfg),
        "mel_config": dataclasses.asdict(MEL),
        "tokens": AsrUnits.from_texts(TEXTS.values()).tokens,
    }
    state["model"] = build_evaluator(state).net.state_dict()
    torch.save(state, root / "asr.pt")
    data = root / "data"
    data.mkdir()
    write_kv(data / "text", TEXTS)
    write_kv(data / "utt2spk", {u: u[0] for u in TEXTS})
    write_speech_tokens(root / "speech_tokens", {u: [1, 2, 3, i] for i, u in enumerate(TEXTS)})
    conf = yaml.safe_load((REPO / "egs/TEMPLATE/conf/grpo_debug.yaml").read_text())
    conf["rollout"].update(group_size=3, prompts_per_step=2, max_new_tokens=8)
    (root / "grpo.yaml").write_text(yaml.safe_dump(conf))
    return [
        "--config", str(root / "grpo.yaml"), "--base-dir", str(root / "base"),
        "--tokenizer", str(root / "tokenizer.pt"), "--reward-model", str(root / "asr.pt"),
        "--data-dir", str(data), "--tokens", str(root / "speech_tokens"), "--steps", "2",
    ]  # fmt: skip


def test_benchmark_prints_the_split_the_agreement_and_the_ratio(tmp_path, capsys) -> None:
    benchmark_reward_path.main(_inputs(tmp_path))
    lines = capsys.readouterr().out.strip().splitlines()
    name, ratio = lines[-1].split("=")
    assert name == "reward_step_speedup_mel_vs_audio" and float(ratio) > 0
    table = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    assert {"generate", "decode", "vocode", "reward", "update", "**step**"} <= set(table)
    audio_vocode, mel_vocode = (float(x) for x in table["vocode"].split("|")[2:4])
    assert mel_vocode == 0.0 < audio_vocode  # the mel path never runs Griffin-Lim
    rho = {line.split(":")[0].strip(): line for line in lines if line.startswith("  ")}
    assert set(rho) == {"total", "asr_wer", "asr_nll"}


def test_a_reward_asr_with_other_mel_settings_is_refused(tmp_path) -> None:
    args = _inputs(tmp_path)
    state = torch.load(tmp_path / "asr.pt", weights_only=False)
    state["mel_config"]["hop_length"] = 128
    torch.save(state, tmp_path / "asr.pt")
    with pytest.raises(ValueError, match="log-mel settings .* differ"):
        benchmark_reward_path.main(args)
