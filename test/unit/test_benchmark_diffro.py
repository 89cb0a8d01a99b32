"""The DiffRO-vs-GRPO step benchmark end to end on tiny random models: both methods sample the
same completions, every part of a step is timed, and the ratio line comes last."""

from __future__ import annotations

from pathlib import Path

import torch
from tiny_codec_models import REPO, TEXTS, write_tiny_models

from local_lib.bin import benchmark_diffro
from local_lib.models.asr_units import AsrUnits
from local_lib.models.token2text import Token2Text, Token2TextConfig


def _inputs(root: Path) -> list[str]:
    paths = write_tiny_models(root, group_size=2, prompts_per_step=2)
    t2t_cfg = Token2TextConfig(embed_dim=8, channels=8, conv_layers=1)
    units = AsrUnits.from_texts(TEXTS.values())
    token2text = Token2Text.build(t2t_cfg, 8, units, {"speaker": ["a", "b"]})
    torch.save(token2text.state(), root / "t2t.pt")
    return [
        "--grpo-config", str(paths["grpo"]),
        "--diffro-config", str(REPO / "egs/TEMPLATE/conf/diffro_debug.yaml"),
        "--base-dir", str(paths["base"]), "--tokenizer", str(paths["tokenizer"]),
        "--reward-asr", str(paths["asr"]), "--token2text", str(root / "t2t.pt"),
        "--data-dir", str(paths["data"]), "--tokens", str(paths["tokens"]), "--steps", "2",
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
    # the table rounds step times to 3 decimals (steps of tiny models take milliseconds) and
    # the ratio to 2: the ratio must lie within what the rounded times allow
    low = (grpo_step - 5e-4) / (diffro_step + 5e-4) - 5e-3
    high = (grpo_step + 5e-4) / max(diffro_step - 5e-4, 1e-9) + 5e-3
    assert low <= float(ratio) <= high


class _RecordingLoop:
    """A loop whose batch records the policy's weights when the step starts."""

    def __init__(self) -> None:
        self.policy = torch.nn.Linear(2, 1)
        self.seen: list[torch.Tensor] = []

    def batch(self, step: int) -> int:
        self.seen.append(self.policy.weight.detach().clone())
        return step

    def loss(self, model, batch):
        return model.weight.sum() * 10.0, {}


def test_every_step_starts_from_the_base_so_both_methods_sample_alike() -> None:
    loop = _RecordingLoop()
    start = loop.policy.weight.detach().clone()
    records, batches = benchmark_diffro.timed_steps(loop, steps=3, warmup=1, lr=1.0)
    assert batches == [0, 1, 2, 3] and len(records) == 3
    assert all(torch.equal(w, start) for w in loop.seen)
    assert not torch.equal(loop.policy.weight, start)  # each step did update it
