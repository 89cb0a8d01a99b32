"""Exporting a stage-5 checkpoint: the weights of a real (tiny) GRPO run's checkpoint come back
as the model directory the run itself wrote at that step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from tiny_codec_models import write_tiny_models

from local_lib.bin import export_checkpoint, train_grpo
from local_lib.models.codec_lm import CodecLM


def _grpo_run(tmp_path: Path) -> tuple[dict[str, Path], Path]:
    paths = write_tiny_models(tmp_path, group_size=2, prompts_per_step=1)
    conf = yaml.safe_load(paths["grpo"].read_text())
    conf["train"].update(num_steps=2, save_every=1, keep_checkpoints=0, lr=1e-2)
    paths["grpo"].write_text(yaml.safe_dump(conf))
    out = tmp_path / "grpo"
    train_grpo.main([
        "--config", str(paths["grpo"]), "--out-dir", str(out), "--base-dir", str(paths["base"]),
        "--tokenizer", str(paths["tokenizer"]), "--train-dir", str(paths["data"]),
        "--tokens", str(paths["tokens"]), "--reward-model", f"r={paths['asr']}",
    ])  # fmt: skip
    return paths, out


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return CodecLM.from_pretrained(model_dir).model.state_dict()


def test_the_last_checkpoint_exports_to_the_final_model(tmp_path: Path) -> None:
    paths, run = _grpo_run(tmp_path)
    step = export_checkpoint.export_checkpoint(
        paths["base"], run / "checkpoints/checkpoint_00000002.pt", tmp_path / "at2"
    )
    assert step == 2
    exported, final = _weights(tmp_path / "at2"), _weights(run / "model")
    assert exported.keys() == final.keys()
    for key, value in final.items():
        torch.testing.assert_close(exported[key], value, rtol=0, atol=0, msg=key)
    first = run / "checkpoints/checkpoint_00000001.pt"
    export_checkpoint.main([
        "--base-dir", str(paths["base"]), "--checkpoint", str(first),
        "--out-dir", str(tmp_path / "at1"),
    ])  # fmt: skip
    at1, base = _weights(tmp_path / "at1"), _weights(paths["base"])
    assert any(not torch.equal(at1[k], final[k]) for k in final), "step 1 equals step 2"
    assert any(not torch.equal(at1[k], base[k]) for k in base), "step 1 equals the base"


def test_a_checkpoint_of_another_model_is_named(tmp_path: Path) -> None:
    paths = write_tiny_models(tmp_path, group_size=2, prompts_per_step=1)
    bad = tmp_path / "other.pt"
    torch.save({"step": 3, "model": {"net.weight": torch.zeros(2)}}, bad)
    with pytest.raises(ValueError, match=r"other.pt: no prefix of its 1 model keys"):
        export_checkpoint.export_checkpoint(paths["base"], bad, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        export_checkpoint.export_checkpoint(paths["base"], tmp_path / "missing.pt", tmp_path / "o")
