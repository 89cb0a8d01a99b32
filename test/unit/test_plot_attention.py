"""The attention figure: a panel's word boxes, spans and rewards by hand on planted attention;
the CLI on a tiny random Whisper with chosen heads; its errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_select_attention_heads import speech  # noqa: F401  (a two-utterance data dir)
from test_whisper_reward import whisper_dir  # noqa: F401  (the tiny random Whisper fixture)

from local_lib.bin import plot_attention, select_attention_heads
from local_lib.data.kaldi_dir import write_kv
from local_lib.models.asr_reward import HeadAttention
from local_lib.rl.w3ar import W3ARRewardConfig


def test_panel_by_hand() -> None:
    weights = np.zeros((1, 4, 6), np.float32)
    for t, frame in enumerate((0, 2, 3, 5)):  # "a", "b", " ", "c": peaks step 2, 1, 2 frames
        weights[0, t, frame] = 1.0
    att = HeadAttention(["a", "b", " ", "c"], np.array([0, 0, -1, 1]), [(0, 0)], weights, 0.04)
    p = plot_attention.panel("w3ar", att, W3ARRewardConfig())
    # word centres at frames 1 and 5: the boundary at 3; word rewards 0.5 purity + 0.5 tanh(step)
    assert [(b.word, b.first, b.last, b.start, b.end) for b in p.boxes] == [
        ("ab", 0, 1, 0, 3), ("c", 3, 3, 3, 6)
    ]
    assert p.boxes[0].reward == pytest.approx(0.5 + 0.25 * math.tanh(0.2))
    assert p.boxes[1].reward == pytest.approx(0.5 + 0.5 * math.tanh(0.2))
    assert p.purity == pytest.approx(1.0)
    assert p.monotonicity == pytest.approx((2 * math.tanh(0.2) + math.tanh(0.1)) / 3)
    np.testing.assert_array_equal(p.attention, weights[0])


def test_cli_draws_each_system_and_names_a_missing_one(whisper_dir, speech, tmp_path):  # noqa: F811
    select_attention_heads.main(["--model", str(whisper_dir), "--data-dir", str(speech)])
    natural = speech / "wav.scp"
    other = tmp_path / "other.scp"
    write_kv(other, {"s1_b": str(speech.parent / "s1_a.wav")})  # another system: s1_b only
    out = tmp_path / "attention.png"
    args = ["--model", str(whisper_dir), "--data-dir", str(speech), "--out", str(out),
            "--system", f"natural={natural}", f"other={other}"]  # fmt: skip
    plot_attention.main(args)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match=r"s1_a is not in .*missing from: .*other.scp"):
        plot_attention.main([*args, "--utt", "s1_a"])
