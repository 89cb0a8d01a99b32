"""The decoupling probes find what a stream's codes carry, and nothing where there is nothing."""

import pytest
import torch

from local_lib.bin.reward_codec_decoupling import emotion_probe, pooled, text_probe, with_context
from local_lib.models.asr_units import AsrUnits


def test_with_context_and_pooled_by_hand():
    codes = torch.tensor([[1.0], [2.0], [3.0]])
    assert with_context(codes, 1).tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 0]]
    assert pooled([codes])[0].tolist() == pytest.approx([2.0, (2 / 3) ** 0.5])


def test_emotion_probe_reads_a_code_that_carries_the_emotion_and_not_one_that_does_not():
    labels = ["Angry", "Sad"] * 10
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(20, 2, generator=gen)
    sign = torch.tensor([[1.0, 0.0] if y == "Angry" else [-1.0, 0.0] for y in labels])
    carries = noise + 3 * sign
    assert emotion_probe(carries[:10], labels[:10], carries[10:], labels[10:]) == 1.0
    blind = torch.randn(20, 2, generator=gen)
    assert emotion_probe(blind[:10], labels[:10], blind[10:], labels[10:]) < 0.9


def test_text_probe_reads_codes_that_spell_the_text_and_not_constant_codes():
    texts = ["ab", "ba", "abba", "baab"] * 3
    units = AsrUnits.from_texts(texts)
    spelled = [torch.tensor([[1.0, 0.0] if ch == "a" else [0.0, 1.0] for ch in t]) for t in texts]
    cer = text_probe(spelled[:8], texts[:8], spelled[8:], texts[8:], units, upsample=2, context=0)
    assert cer == 0.0
    const = [torch.ones(len(t), 2) for t in texts]
    cer = text_probe(const[:8], texts[:8], const[8:], texts[8:], units, upsample=2, context=0)
    assert cer >= 0.5
