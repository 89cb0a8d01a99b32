"""The reward codec (HPRO's reward model): FSQ by hand, soft tokens, word spans, checkpoint."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from local_lib.bin.train_reward_codec import RewardCodecRecipeConfig
from local_lib.config import load_config
from local_lib.models.asr_units import AsrUnits
from local_lib.models.reward_codec import (
    FSQ,
    RewardCodec,
    RewardCodecConfig,
    RewardCodecOutput,
    load_reward_codec,
    pad_spans,
    proportional_spans,
    span_weights,
    word_units,
)

TEXTS = ["the cat sat", "on a mat"]
TINY = RewardCodecConfig(embed_dim=8, channels=8, encoder_layers=1, head_layers=1, dropout=0.0)


def tiny_codec(seed: int = 0) -> RewardCodec:
    torch.manual_seed(seed)
    codec = RewardCodec.build(TINY, 16, AsrUnits.from_texts(TEXTS), ["Angry", "Happy"], 3)
    codec.net.eval()
    return codec


def test_fsq_quantises_by_hand():
    fsq = FSQ((3, 5))
    # tanh(z) = 0.6, -0.3; scaled by (L - 1)/2 = 1, 2: 0.6, -0.6; rounded 1, -1; codes 1/1, -1/2
    z = torch.tensor([math.atanh(0.6), math.atanh(-0.3)], requires_grad=True)
    codes = fsq(z)
    assert codes.tolist() == [1.0, -0.5]
    codes.sum().backward()
    # the rounding passes the gradient straight through: d/dz tanh(z) = 1 - tanh(z)^2
    assert z.grad.tolist() == pytest.approx([1 - 0.36, 1 - 0.09])


def test_fsq_codes_lie_on_the_grid():
    codes = FSQ((5,))(torch.linspace(-4, 4, 101)[:, None])
    assert set(codes.flatten().tolist()) == {-1.0, -0.5, 0.0, 0.5, 1.0}


@pytest.mark.parametrize("levels", [(4,), (1,), ()])
def test_fsq_refuses_even_or_degenerate_levels(levels):
    with pytest.raises(ValueError, match="odd"):
        FSQ(levels)


def test_one_hot_soft_tokens_match_the_hard_ids_and_carry_gradient():
    codec = tiny_codec()
    tokens = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [3, 4, 5, 6, 7, 8, 9, 10]]
    hard = codec.run_ids(tokens)
    ids, lens = codec.pad_ids(tokens)
    probs = torch.nn.functional.one_hot(ids, 16).float().requires_grad_(True)
    spans = codec.word_spans(hard, TEXTS)
    soft = codec.run_probs(probs, lens, spans)
    assert torch.allclose(soft.content, hard.content) and torch.allclose(soft.style, hard.style)
    assert torch.allclose(soft.text_log_probs, hard.text_log_probs, atol=1e-6)
    loss = codec.text_nll(soft, TEXTS).sum() + soft.word_dims.sum() + soft.emotion_logits.sum()
    loss.backward()
    assert probs.grad.abs().sum() > 0


def test_streams_feed_their_own_heads():
    """Content codes decide the text head; style codes alone the emotion and word heads."""
    codec = tiny_codec()
    tokens = [[1, 2, 3, 4, 5, 6, 7, 8]]
    emb = codec.net.embed(codec.pad_ids(tokens)[0]).detach().requires_grad_(True)
    out = codec.net(emb, torch.tensor([8]), pad_spans([[(0, 4), (4, 8)]]))
    style_grad = torch.autograd.grad(out.emotion_logits.sum(), out.style, retain_graph=True)[0]
    assert style_grad.abs().sum() > 0
    with pytest.raises(RuntimeError):  # the emotion head does not read the content codes
        torch.autograd.grad(out.emotion_logits.sum(), out.content, retain_graph=True)
    with pytest.raises(RuntimeError):  # nor the text head the style codes
        torch.autograd.grad(out.text_log_probs.sum(), out.style, retain_graph=True)


def test_word_units_and_proportional_spans_by_hand():
    units = AsrUnits.from_texts(TEXTS)
    ids, words = word_units(units, "The cat!")
    assert ids == units.encode("the cat") and words == [0, 0, 0, -1, 1, 1, 1]
    assert proportional_spans(words, 7) == [(0, 3), (4, 7)]
    assert proportional_spans(words, 14) == [(0, 6), (8, 14)]
    assert proportional_spans(words, 2) == [(0, 1), (1, 2)]


def test_span_weights_average_each_word():
    spans = pad_spans([[(0, 2), (2, 3)], [(1, 3)]])
    assert spans[1, 1].tolist() == [0, 0]  # padding word
    w = span_weights(spans, 3)
    assert w[0].tolist() == [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]
    assert w[1].tolist() == [[0.0, 0.5, 0.5], [0.0, 0.0, 0.0]]


def test_word_spans_follow_the_ctc_alignment():
    """8 CTC frames (4 tokens x 2): 'a' a, blank, blank, ' ', 'b' b b -> words at tokens [0, 1)
    and [2, 4)."""
    codec = tiny_codec()
    units = AsrUnits.from_texts(["a b"])
    codec.units = units
    a, space, b = units.encode("a b")
    path = [a, a, 0, 0, space, b, b, b]
    log_probs = torch.full((1, 8, units.size), -20.0)
    log_probs[0, torch.arange(8), torch.tensor(path)] = 0.0
    out = RewardCodecOutput(
        content=torch.zeros(1, 4, 6), style=torch.zeros(1, 4, 3), lens=torch.tensor([4]),
        recon_logits=torch.zeros(1, 4, 16), text_log_probs=log_probs,
        frame_lens=torch.tensor([8]), emotion_logits=torch.zeros(1, 2),
        style_hidden=torch.zeros(1, 4, 8), word_dims=None,
    )  # fmt: skip
    assert codec.word_spans(out, ["a b"]).tolist() == [[[0, 1], [2, 4]]]
    # a text the frames cannot hold falls back to the character share
    out = RewardCodecOutput(
        content=torch.zeros(1, 1, 6), style=torch.zeros(1, 1, 3), lens=torch.tensor([1]),
        recon_logits=torch.zeros(1, 1, 16), text_log_probs=log_probs[:, :2],
        frame_lens=torch.tensor([2]), emotion_logits=torch.zeros(1, 2),
        style_hidden=torch.zeros(1, 1, 8), word_dims=None,
    )  # fmt: skip
    assert codec.word_spans(out, ["a b"]).tolist() == [[[0, 1], [0, 1]]]


def test_text_nll_refuses_a_text_its_frames_cannot_hold():
    codec = tiny_codec()
    with pytest.raises(ValueError, match="does not fit"):
        codec.text_nll(codec.run_ids([[1, 2]]), ["the cat sat"])


def test_checkpoint_round_trip(tmp_path):
    codec = tiny_codec()
    torch.save(codec.state(), tmp_path / "model.pt")
    back = load_reward_codec(tmp_path / "model.pt")
    tokens = [[1, 2, 3, 4, 5, 6]]
    assert torch.equal(back.run_ids(tokens).style, codec.run_ids(tokens).style)
    assert back.emotions == ["Angry", "Happy"] and back.net.cfg == TINY
    torch.save({"kind": "token2text"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a reward codec"):
        load_reward_codec(tmp_path / "other.pt")


def test_emotion_index_refuses_an_unknown_emotion():
    codec = tiny_codec()
    assert codec.emotion_index(["Happy", "Angry"]).tolist() == [1, 0]
    with pytest.raises(ValueError, match="Sad"):
        codec.emotion_index(["Sad"])


def test_config_refuses_even_levels():
    with pytest.raises(ValueError, match="odd"):
        RewardCodecConfig(style_levels=(4, 5))
    assert np.prod(TINY.content_levels) == 5**6


@pytest.mark.parametrize("size", ["", "_mini", "_debug"])
def test_recipe_config_builds_a_codec_that_runs(size):
    conf = Path(__file__).resolve().parents[2] / f"egs/TEMPLATE/conf/reward_codec{size}.yaml"
    cfg = load_config(conf, RewardCodecRecipeConfig).model
    codec = RewardCodec.build(cfg, 16, AsrUnits.from_texts(TEXTS), ["Angry", "Happy"], 3)
    out = codec.run_ids([[1, 2, 3, 4, 5, 6, 7, 8], [3, 4, 5, 6, 7, 8]])
    assert out.content.shape[-1] == len(cfg.content_levels)
    assert out.style.shape[-1] == len(cfg.style_levels) and out.emotion_logits.shape == (2, 2)
