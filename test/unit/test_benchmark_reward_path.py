"""The reward-path benchmark end to end on tiny random models: both paths time every part of a
step, pair the rewards of the same completions, and end with the ratio line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_codec_models import write_tiny_models

from local_lib.bin import benchmark_reward_path


def _inputs(root: Path) -> list[str]:
    paths = write_tiny_models(root, group_size=3, prompts_per_step=2)
    return [
        "--config", str(paths["grpo"]), "--base-dir", str(paths["base"]),
        "--tokenizer", str(paths["tokenizer"]), "--reward-model", str(paths["asr"]),
        "--data-dir", str(paths["data"]), "--tokens", str(paths["tokens"]), "--steps", "2",
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
