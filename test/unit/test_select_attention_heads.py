"""Choosing a reward ASR's aligning cross-attention heads: the choice on toy attention with one
planted diagonal head, the heads file, and the whole tool on a tiny random Whisper."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_whisper_reward import whisper_dir  # noqa: F401  (the tiny random Whisper fixture)

from local_lib.bin import select_attention_heads as tool
from local_lib.data.audio import save_audio
from local_lib.data.kaldi_dir import write_data_dir
from local_lib.models.asr_reward import HeadAttention
from local_lib.models.whisper_asr import WhisperRewardASR
from local_lib.rl.w3ar import W3ARRewardConfig

HEADS = [(layer, head) for layer in range(2) for head in range(3)]
DIAGONAL, SINK = (1, 2), (0, 0)


def _toy_attention(rng: np.random.Generator, n_text: int = 20, n_frames: int = 32) -> HeadAttention:
    """Six heads over 40 ms frames: (1, 2) follows the speech, 1.5 frames per token with a
    Gaussian spread (as a character ASR does), (0, 0) rests on frame 0, the others are random."""
    logits = rng.normal(0.0, 1.0, (len(HEADS), n_text, n_frames))
    weights = np.exp(logits)
    weights[HEADS.index(SINK)] = 1e-3
    weights[HEADS.index(SINK), :, 0] = 1.0
    frames = np.arange(n_frames)[None, :]
    peaks = np.linspace(1.0, n_frames - 2.0, n_text)[:, None] + rng.uniform(-0.2, 0.2, (n_text, 1))
    weights[HEADS.index(DIAGONAL)] = np.exp(-((frames - peaks) ** 2) / (2 * 1.2**2))
    weights /= weights.sum(axis=-1, keepdims=True)
    return HeadAttention(["x"] * n_text, np.arange(n_text), HEADS, weights.astype(np.float32), 0.04)


def test_the_planted_diagonal_head_is_chosen_over_random_heads_and_a_sink():
    rng = np.random.default_rng(0)
    cfg = W3ARRewardConfig().metrics_config(frame_shift_s=0.04, speech_token_rate=1.0)
    scores = tool.head_scores([_toy_attention(rng) for _ in range(4)], cfg)
    assert [(s.layer, s.head) for s in scores] == HEADS
    assert tool.choose_heads(scores, 1) == [DIAGONAL]
    by_head = {(s.layer, s.head): s for s in scores}
    diagonal, sink = by_head[DIAGONAL], by_head[SINK]
    assert 0.1 < diagonal.monotonicity < 0.2 and sink.monotonicity == 0.0
    # the sink is sharper, and purity + monotonicity would have ranked it first
    assert sink.purity > diagonal.purity
    assert sink.purity + sink.monotonicity > diagonal.purity + diagonal.monotonicity
    assert tool.choose_heads(scores, 2)[0] == DIAGONAL


def test_ties_go_to_the_lower_layer_and_head():
    scores = [tool.HeadScore(1, 0, 0.5, 0.2), tool.HeadScore(0, 1, 0.5, 0.2)]
    assert tool.choose_heads(scores, 2) == [(0, 1), (1, 0)]
    with pytest.raises(ValueError, match="top_k"):
        tool.choose_heads(scores, 0)


def test_heads_file_round_trip_and_its_errors(tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights v1")
    with pytest.raises(tool.HeadsFileError, match="select_attention_heads --model .*model.pt"):
        tool.read_heads(model)
    scores = [tool.HeadScore(0, 0, 0.9, 0.0), tool.HeadScore(0, 1, 0.7, 0.15)]
    path = tool.write_heads(model, scores, [(0, 1)], W3ARRewardConfig(), "2 utterances of dev")
    assert path == tmp_path / "model.pt.heads.json"
    assert tool.read_heads(model) == [(0, 1)]
    table = (tmp_path / "model.pt.heads.md").read_text().splitlines()
    assert "| 0 | 1 | 0.7000 | 0.1500 | 0.1050 | yes |" in table
    assert "| 0 | 0 | 0.9000 | 0.0000 | 0.0000 |  |" in table
    model.write_bytes(b"weights v2, retrained")
    with pytest.raises(tool.HeadsFileError, match="another version"):
        tool.read_heads(model)


def test_a_ctc_asr_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no decoder cross-attention"):
        tool.require_cross_attention(object(), tmp_path / "reward_ctc.pt")


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """A data dir of two 'utterances' (noise) with their texts."""
    root = tmp_path_factory.mktemp("speech")
    rng = np.random.default_rng(1)
    wavs = {"s1_a": 16000, "s1_b": 9000}
    for utt, n in wavs.items():
        save_audio(root / f"{utt}.wav", 0.1 * rng.standard_normal(n).astype(np.float32))
    write_data_dir(root / "dev", {
        "wav.scp": {u: str(root / f"{u}.wav") for u in wavs},
        "text": {"s1_a": "the cat", "s1_b": "a hat"},
        "utt2spk": {u: "s1" for u in wavs},
    })  # fmt: skip
    return root / "dev"


def test_head_attention_matches_cross_attention_on_whisper(whisper_dir):  # noqa: F811
    asr = WhisperRewardASR(whisper_dir)
    rng = np.random.default_rng(2)
    wavs = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (16000, 8000)]
    texts = ["the cat", "a"]
    every = asr.head_attention(wavs, texts)
    assert every[0].heads == [(0, 0), (0, 1), (1, 0), (1, 1)]
    one = asr.head_attention(wavs, texts, [(1, 0)])
    for got_all, got_one, want_all, want_one in zip(
        every, one, asr.cross_attention(wavs, texts), asr.cross_attention(wavs, texts, [1], [0])
    ):
        np.testing.assert_allclose(got_all.mean(), want_all.weights, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got_one.mean(), want_one.weights, rtol=1e-5, atol=1e-7)
        assert got_one.tokens == want_one.tokens
        np.testing.assert_array_equal(got_one.word_index, want_one.word_index)
    with pytest.raises(ValueError, match=r"head \(2, 0\) does not exist"):
        asr.head_attention(wavs, texts, [(2, 0)])


def test_the_tool_chooses_and_writes_heads_for_a_whisper_dir(whisper_dir, speech):  # noqa: F811
    tool.main(["--model", str(whisper_dir), "--data-dir", str(speech), "--top-k", "3"])
    record = json.loads(tool.heads_file(whisper_dir).read_text())
    assert record["source"] == f"2 utterances of {speech}"
    assert len(record["scores"]) == 4 and len(record["heads"]) == 3
    assert tool.read_heads(whisper_dir) == [tuple(h) for h in record["heads"]]
    table = tool.heads_file(whisper_dir).with_suffix(".md").read_text()
    assert table.count("| yes |") == 3 and table.count("\n| ") == 4 + 1  # + the header row
