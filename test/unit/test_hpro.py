"""HPRO's losses and schedule against numbers worked out by hand (docs/methods.md#hpro)."""

import math

import pytest
import torch

from local_lib.config import ConfigError, from_mapping
from local_lib.rl.hpro import (
    TERMS,
    HPROLossConfig,
    HPROWeights,
    active_terms,
    ccc,
    frame_mse,
    hpro_loss,
    sentence_loss,
    word_loss,
)

ALL = torch.ones(1, 3, dtype=torch.bool)


def test_ccc_by_hand():
    # x = 1 2 3, y = 2 4 6: means 2, 4; var_x 2/3, var_y 8/3, cov 4/3;
    # CCC = (8/3) / (2/3 + 8/3 + (2 - 4)^2) = 8/22
    x, y = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[2.0, 4.0, 6.0]])
    assert ccc(x, y, ALL).item() == pytest.approx(8 / 22)
    assert ccc(x, x, ALL).item() == pytest.approx(1.0)
    assert ccc(x, 4 - x, ALL).item() == pytest.approx(-1.0)  # mirrored about the same mean


def test_ccc_ignores_masked_entries_and_equal_constants_give_zero():
    x, y = torch.tensor([[1.0, 3.0, 99.0]]), torch.tensor([[1.0, 3.0, -5.0]])
    assert ccc(x, y, torch.tensor([[True, True, False]])).item() == pytest.approx(1.0)
    const = torch.full((1, 3), 2.0)
    assert ccc(const, const, ALL).item() == 0.0


def test_word_loss_by_hand():
    # utterance 0: dim 0 is the 8/22 pair above (1 - 8/22 = 14/22), dim 1 identical (0);
    # utterance 1 has one word: no contour, left out of the mean
    gen = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], [[5.0, 5.0], [0.0, 0.0], [0.0, 0.0]]])
    ref = torch.tensor([[[2.0, 1.0], [4.0, 2.0], [6.0, 3.0]], [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    assert word_loss(gen, ref, mask).item() == pytest.approx(14 / 22)


def test_frame_mse_by_hand():
    gen = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    ref = torch.tensor([[[0.5, -0.5], [0.0, 0.0]]])
    # frame 0: (0.25 + 0.25) / 2; frame 1 masked out
    assert frame_mse(gen, ref, torch.tensor([[True, False]])).item() == pytest.approx(0.25)
    assert frame_mse(gen, ref, torch.tensor([[True, True]])).item() == pytest.approx(0.625)


def test_sentence_loss_by_hand():
    # softmax(0, ln 3) = (1/4, 3/4): -log 1/4 for class 0, -log 3/4 for class 1
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    value = sentence_loss(logits, torch.tensor([0, 1])).item()
    assert value == pytest.approx((math.log(4.0) + math.log(4.0 / 3.0)) / 2)


def test_progressive_schedule_switches_at_the_configured_steps():
    cfg = HPROLossConfig(frame_steps=3, word_steps=2)
    frame = ("frame_content", "frame_style", "text")
    assert [active_terms(cfg, s) for s in range(3)] == [frame] * 3
    word = ("frame_content", "frame_style", "word", "text")
    assert [active_terms(cfg, s) for s in (3, 4)] == [word] * 2
    assert active_terms(cfg, 5) == TERMS == active_terms(cfg, 500)


def test_variants():
    assert active_terms(HPROLossConfig(schedule="summed", frame_steps=10), 0) == TERMS
    assert active_terms(HPROLossConfig(schedule="sentence_only"), 0) == ("sentence",)
    assert active_terms(HPROLossConfig(schedule="sentence_only"), 10**6) == ("sentence",)


def test_hpro_loss_by_hand():
    terms = {name: torch.tensor(float(k + 1)) for k, name in enumerate(TERMS)}  # 1 2 3 4 5
    weights = HPROWeights(word=0.5, text=2.0)
    kl, mask = torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[True, True, False]])
    active = ("frame_content", "frame_style", "text")
    loss, stats = hpro_loss(terms, active, weights, kl, mask, beta=0.1)
    assert loss.item() == pytest.approx(1 + 2 + 2 * 5 + 0.1 * 2)
    assert stats["loss/word"] == 3.0 and stats["kl"] == 2.0 and stats["terms_on"] == 3
    loss, _ = hpro_loss(terms, TERMS, weights, None, mask, beta=0.0)
    assert loss.item() == pytest.approx(1 + 2 + 0.5 * 3 + 4 + 2 * 5)


def test_hpro_loss_refuses_a_missing_term_and_beta_without_kl():
    mask = torch.ones(1, 1, dtype=torch.bool)
    with pytest.raises(KeyError, match="word"):
        hpro_loss({"sentence": torch.tensor(1.0)}, ("word",), HPROWeights(), None, mask, 0.0)
    with pytest.raises(ValueError, match="beta"):
        hpro_loss({"sentence": torch.tensor(1.0)}, ("sentence",), HPROWeights(), None, mask, 0.1)


def test_gradient_of_each_term_reaches_only_its_inputs():
    gen = torch.zeros(1, 2, 2, requires_grad=True)
    terms = {"frame_style": frame_mse(gen, torch.ones(1, 2, 2), torch.ones(1, 2).bool()),
             "sentence": torch.tensor(1.0, requires_grad=True)}  # fmt: skip
    loss, _ = hpro_loss(terms, ("frame_style",), HPROWeights(), None, torch.ones(1, 2), 0.0)
    loss.backward()
    # d/dg mean((g - 1)^2) over 4 values = 2 (g - 1) / 4
    assert torch.allclose(gen.grad, torch.full((1, 2, 2), -0.5))
    assert terms["sentence"].grad is None


def test_loss_config_from_yaml_mapping():
    data = {"beta": 0.05, "schedule": "summed", "frame_steps": 7, "weights": {"word": 2}}
    cfg = from_mapping(HPROLossConfig, data, "hpro.yaml")
    assert (cfg.beta, cfg.schedule, cfg.frame_steps, cfg.weights.word) == (0.05, "summed", 7, 2.0)
    with pytest.raises(ConfigError, match="schedule"):
        from_mapping(HPROLossConfig, {"schedule": "staged"}, "hpro.yaml")
    with pytest.raises(ConfigError, match="word_steps"):
        from_mapping(HPROLossConfig, {"word_steps": -1}, "hpro.yaml")


def test_gradients_of_every_term_reach_the_lm_through_teacher_forced_soft_tokens():
    """A tiny codec LM teacher-forced on reference tokens, read by a tiny reward codec beside
    the same reference: each HPRO term is differentiable into the LM's weights."""
    from local_lib.data.text_tokenizer import CharTokenizer
    from local_lib.models.asr_units import AsrUnits
    from local_lib.models.codec_lm import CodecLM
    from local_lib.models.reward_codec import RewardCodec, RewardCodecConfig

    texts, refs = ["a cat", "the dog"], [[1, 2, 3, 4, 5, 6], [7, 6, 5, 4, 3, 2, 1, 0]]
    torch.manual_seed(0)
    lm = CodecLM.from_config(
        {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
         "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 128},
        CharTokenizer.build(texts), 8,
    )  # fmt: skip
    cfg = RewardCodecConfig(embed_dim=8, channels=8, encoder_layers=1, head_layers=1, dropout=0)
    codec = RewardCodec.build(cfg, 8, AsrUnits.from_texts(texts), ["Angry", "Sad"], 3)
    codec.net.eval().requires_grad_(False)
    layout = lm.layout
    width = max(map(len, refs)) + 1
    completion = torch.full((2, width), layout.pad_id)
    mask = torch.zeros(2, width, dtype=torch.bool)
    for b, ref in enumerate(refs):
        ids = [*layout.speech_ids(ref), layout.speech_end_id]
        completion[b, : len(ids)] = torch.tensor(ids)
        mask[b, : len(ref) + 1] = True
    prompts = [lm.prompt_ids(t) for t in texts]
    soft = lm.soft_tokens_teacher_forced(prompts, completion, mask, generator=torch.Generator())
    lens = torch.tensor([len(r) for r in refs])
    ref_out = codec.run_ids(refs)
    spans = codec.word_spans(ref_out, texts)
    ref_out = codec.run_ids(refs, spans)
    # the end marker's position is dropped, so generated and reference frames share a width
    gen = codec.run_probs(soft.speech_probs[:, : width - 1], lens, spans)
    terms = {
        "frame_content": frame_mse(gen.content, ref_out.content, gen.mask),
        "frame_style": frame_mse(gen.style, ref_out.style, gen.mask),
        "word": word_loss(gen.word_dims, ref_out.word_dims, spans[..., 1] > spans[..., 0]),
        "sentence": sentence_loss(gen.emotion_logits, codec.emotion_index(["Angry", "Sad"])),
        "text": codec.text_nll(gen, texts).mean(),
    }
    weight = lm.model.get_input_embeddings().weight
    for name in ("text", "sentence", "word"):
        (grad,) = torch.autograd.grad(terms[name], weight, retain_graph=True)
        assert grad.abs().sum() > 0, name
    loss, _ = hpro_loss(terms, TERMS, HPROWeights(), None, soft.mask, 0.0)
    loss.backward()
    assert all(p.grad is not None for p in lm.model.parameters() if p.requires_grad)
