"""Grad-TTS stage 4: the model file round trip and the training tool on a tiny data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.gradtts import GradTTS, GradTTSBundle, GradTTSConfig, load_gradtts

TINY = GradTTSConfig(
    n_mels=16,
    cond_dim=8,
    enc_channels=16,
    enc_filter_channels=32,
    enc_heads=2,
    enc_layers=1,
    prenet_layers=1,
    dp_filter_channels=16,
    dec_dim=8,
    dec_dim_mults=(1, 2),
    dec_groups=4,
    dec_attention=False,
    segment_frames=None,
)


def tiny_bundle() -> GradTTSBundle:
    torch.manual_seed(0)
    tok = CharTokenizer.build(["the cat sat", "a dog ran"])
    model = GradTTS(TINY, tok.vocab_size, n_speakers=2, n_emotions=3)
    return GradTTSBundle(model, tok, ["0011", "0012"], ["Angry", "Happy", "Neutral"])


def test_save_load_round_trip_keeps_weights_names_and_outputs(tmp_path: Path) -> None:
    bundle = tiny_bundle()
    bundle.save(tmp_path / "model.pt")
    loaded = load_gradtts(tmp_path / "model.pt")
    assert loaded.model.cfg == TINY
    assert loaded.tokenizer.tokens == bundle.tokenizer.tokens
    assert loaded.speakers == ["0011", "0012"] and loaded.emotions == ["Angry", "Happy", "Neutral"]
    assert not loaded.model.training
    for key, value in bundle.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    text, lengths = loaded.encode_texts(["the dog", "a cat sat"])
    spk = torch.tensor([loaded.speaker_id("0012"), 0])
    emo = torch.tensor([loaded.emotion_id("Happy"), 2])
    bundle.model.eval()
    a = bundle.model.synthesise(
        text, lengths, spk, emo, n_steps=3, generator=torch.Generator().manual_seed(1)
    )
    b = loaded.model.synthesise(
        text, lengths, spk, emo, n_steps=3, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(a[1], b[1]) and torch.allclose(a[0], b[0], atol=1e-6)


def test_unknown_names_and_bad_files_are_errors(tmp_path: Path) -> None:
    bundle = tiny_bundle()
    with pytest.raises(ValueError, match="unknown emotion 'Calm'"):
        bundle.emotion_id("Calm")
    with pytest.raises(ValueError, match="unknown speaker '0020'"):
        bundle.speaker_id("0020")
    with pytest.raises(ValueError, match="sizes"):
        GradTTSBundle(bundle.model, bundle.tokenizer, ["0011"], bundle.emotions)
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a Grad-TTS model file"):
        load_gradtts(tmp_path / "other.pt")
