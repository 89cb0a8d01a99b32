"""The shared stage-5 entry point: the command contract and its up-front errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_lib.rl.grpo_loop import GRPOLoopConfig
from local_lib.train.method_entry import method_parser, run_codec_lm_method

CONTRACT = ["--config", "c.yaml", "--out-dir", "o", "--base-dir", "b", "--tokenizer", "t",
            "--train-dir", "d", "--tokens", "k"]  # fmt: skip


def test_reward_models_keep_their_order_and_need_name_and_path() -> None:
    args = method_parser("x").parse_args(
        [*CONTRACT, "--reward-model", "asr=a.pt", "--reward-model", "t2t=b.pt"]
    )
    assert args.reward_model == [("asr", Path("a.pt")), ("t2t", Path("b.pt"))]
    with pytest.raises(SystemExit):
        method_parser("x").parse_args([*CONTRACT, "--reward-model", "a.pt"])


def test_a_missing_reward_model_is_named_before_anything_loads(tmp_path: Path) -> None:
    def build(ctx, cfg):  # never reached
        raise AssertionError("built a loop without its reward model")

    argv = [*CONTRACT, "--reward-model", f"reward_ctc={tmp_path / 'missing.pt'}"]
    with pytest.raises(FileNotFoundError, match=r"--reward-model reward_ctc: .*missing.pt"):
        run_codec_lm_method(argv, "x", GRPOLoopConfig, build)
