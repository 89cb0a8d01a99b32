"""The Whisper reward-ASR path on a tiny random Whisper saved to a temp dir (nothing downloaded)."""

import numpy as np
import pytest
import torch
from tokenizers.pre_tokenizers import ByteLevel
from transformers import (
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)

from local_lib.models.whisper_asr import WhisperRewardASR

SPECIALS = [
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|transcribe|>",
    "<|notimestamps|>",
]


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    """Byte-level BPE over the 256 byte symbols plus two merges, Whisper's task tokens, a
    2-second feature extractor and a 1+2-layer model of width 16."""
    vocab = {c: i for i, c in enumerate(sorted(ByteLevel.alphabet()))}
    merges = [("Ġ", "t"), ("h", "e")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    for tok in SPECIALS:
        vocab[tok] = len(vocab)
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges, additional_special_tokens=SPECIALS[1:])
    processor = WhisperProcessor(
        WhisperFeatureExtractor(feature_size=80, chunk_length=2), tokenizer
    )
    eot = vocab["<|endoftext|>"]
    cfg = WhisperConfig(
        vocab_size=len(vocab),
        num_mel_bins=80,
        d_model=16,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_source_positions=100,
        max_target_positions=64,
        decoder_start_token_id=vocab["<|startoftranscript|>"],
        eos_token_id=eot,
        pad_token_id=eot,
        bos_token_id=eot,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_whisper")
    WhisperForConditionalGeneration(cfg).save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def asr(whisper_dir):
    return WhisperRewardASR(whisper_dir)


@pytest.fixture(scope="module")
def wavs():
    rng = np.random.default_rng(0)
    return [0.1 * rng.standard_normal(n).astype(np.float32) for n in (16000, 8000)]


def test_nll_equals_model_loss(asr, wavs):
    text = "the cat"
    ids = asr.text_to_ids(text)
    prefix = asr.prefix_ids()
    feats = asr.processor.feature_extractor(wavs[:1], sampling_rate=16000, return_tensors="pt")
    labels = torch.tensor([[-100] * (len(prefix) - 1) + ids + [asr.eos_id]])
    with torch.no_grad():
        out = asr.model(
            input_features=feats.input_features,
            decoder_input_ids=torch.tensor([prefix + ids]),
            labels=labels,
        )
        mean = asr.nll(wavs[:1], [text])
        total = asr.nll(wavs[:1], [text], reduction="sum")
    assert float(mean[0]) == pytest.approx(float(out.loss), rel=1e-5)
    assert float(total[0]) == pytest.approx(float(out.loss) * (len(ids) + 1), rel=1e-5)


def test_cross_attention_rows_and_valid_frames(asr, wavs):
    out = asr.cross_attention(wavs, ["the cat", "a"], layers=[1], heads=[0])
    assert [a.weights.shape for a in out] == [
        (len(asr.text_to_ids("the cat")), 50),
        (len(asr.text_to_ids("a")), 25),
    ]
    for att in out:
        np.testing.assert_allclose(att.weights.sum(axis=1), 1.0, rtol=1e-5)
        assert att.frame_shift_s == pytest.approx(0.02)
    assert out[0].tokens == [" t", "he", " ", "c", "a", "t"]
    assert out[0].word_index.tolist() == [0, 0, -1, 1, 1, 1]


def test_transcribe_returns_one_string_per_input(asr, wavs):
    hyps = asr.transcribe(wavs, max_len=3)
    assert len(hyps) == 2 and all(isinstance(h, str) for h in hyps)


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        WhisperRewardASR(tmp_path)
