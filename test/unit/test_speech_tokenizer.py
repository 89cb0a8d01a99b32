"""k-means mel tokenizer: shapes, determinism, reconstruction vs a trivial baseline, save/load."""

from pathlib import Path

import numpy as np
import pytest
import torch

from local_lib.config import ConfigError, from_mapping, load_config
from local_lib.data.features import LogMelConfig
from local_lib.models import speech_tokenizer
from local_lib.models.speech_tokenizer import KMeansMelTokenizer, SpeechTokenizerConfig

MEL = LogMelConfig(n_mels=16)
CFG = SpeechTokenizerConfig(num_tokens=16, stack=2, kmeans_iters=20, decoder_channels=16,
                            decoder_layers=2, decoder_steps=60, decoder_lr=3e-3)  # fmt: skip


def _fake_feats(n: int = 6, seed: int = 0) -> list[np.ndarray]:
    """Utterances of 'phones': 8 mel prototypes held for 4-10 frames, plus a little noise."""
    protos = np.random.default_rng(0).normal(-4.0, 2.0, size=(8, 16))  # shared "phone set"
    rng = np.random.default_rng(seed)
    feats = []
    for _ in range(n):
        segs = [np.repeat(protos[rng.integers(8)][None], rng.integers(4, 11), 0) for _ in range(12)]
        feats.append(
            (np.concatenate(segs) + rng.normal(0, 0.1, (sum(map(len, segs)), 16))).astype(
                np.float32
            )
        )
    return feats


@pytest.fixture(scope="module")
def tokenizer() -> KMeansMelTokenizer:
    return KMeansMelTokenizer.train(_fake_feats(), CFG, MEL)


def test_interface_and_round_trip_shapes(tokenizer: KMeansMelTokenizer) -> None:
    assert tokenizer.vocab_size == 16
    assert tokenizer.token_rate == pytest.approx(16000 / (256 * 2))
    mel = _fake_feats(1, seed=5)[0][:41]  # odd length: last stack padded by repetition
    tokens = tokenizer.encode(mel)
    assert tokens.dtype == torch.long and tokens.shape == (21,)
    assert int(tokens.min()) >= 0 and int(tokens.max()) < 16
    assert tokenizer.decode(tokens).shape == (42, 16)
    wav = tokenizer.decode_wav(tokens, vocoder=lambda m: np.zeros(len(m) * 256, dtype=np.float32))
    assert wav.shape == (42 * 256,)
    with pytest.raises(ValueError, match="log-mel"):
        tokenizer.encode(np.zeros((4, 7), dtype=np.float32))


def test_encode_waveform_uses_shared_log_mel() -> None:
    wav = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    from local_lib.data.features import log_mel

    mel = log_mel(wav, MEL)
    tok = KMeansMelTokenizer.train([mel], SpeechTokenizerConfig(num_tokens=4, decoder_steps=1), MEL)
    assert torch.equal(tok.encode(wav), tok.encode(mel))


def test_training_is_deterministic(tokenizer: KMeansMelTokenizer) -> None:
    again = KMeansMelTokenizer.train(_fake_feats(), CFG, MEL)
    assert torch.equal(again.centroids, tokenizer.centroids)
    mel = _fake_feats(1, seed=7)[0]
    assert torch.equal(again.encode(mel), tokenizer.encode(mel))
    torch.testing.assert_close(
        again.decode(again.encode(mel)), tokenizer.decode(tokenizer.encode(mel))
    )


def test_reconstruction_beats_trivial_baseline(tokenizer: KMeansMelTokenizer) -> None:
    held_out = _fake_feats(3, seed=11)
    train_mean = np.concatenate(_fake_feats()).mean(0)
    err, base = [], []
    for mel in held_out:
        n = len(mel) - len(mel) % 2
        recon = tokenizer.decode(tokenizer.encode(mel[:n])).numpy()
        err.append(np.abs(recon - mel[:n]).mean())
        base.append(np.abs(train_mean[None] - mel[:n]).mean())
    # the baseline predicts the training-set mean frame; tokens must carry far more than that
    assert np.mean(err) < 0.25 * np.mean(base)


def test_save_load_identical(tokenizer: KMeansMelTokenizer, tmp_path: Path) -> None:
    tokenizer.save(tmp_path / "tok" / "speech_tokenizer.pt")
    again = KMeansMelTokenizer.load(tmp_path / "tok" / "speech_tokenizer.pt")
    mel = _fake_feats(1, seed=3)[0]
    assert torch.equal(again.encode(mel), tokenizer.encode(mel))
    torch.testing.assert_close(
        again.decode(again.encode(mel)), tokenizer.decode(tokenizer.encode(mel))
    )


def test_config_files_and_errors() -> None:
    conf = Path(__file__).resolve().parents[2] / "egs" / "TEMPLATE" / "conf"
    for name in ("speech_tokenizer", "speech_tokenizer_mini", "speech_tokenizer_debug"):
        assert load_config(conf / f"{name}.yaml", SpeechTokenizerConfig).decoder_lr == 1e-3
    with pytest.raises(ConfigError, match="^t.yaml: unknown key.s. clusters"):
        from_mapping(SpeechTokenizerConfig, {"clusters": 3}, "t.yaml")
    with pytest.raises(ValueError, match="cannot train"):
        KMeansMelTokenizer.train([np.zeros((4, 16), np.float32)], CFG, MEL)
    for key, value, match in (
        ("decoder_batch", 0, "decoder_batch must be >= 1"),
        ("decoder_dilation", 0, "decoder_dilation must be >= 1"),
        ("decoder_crop", -1, "decoder_crop must be >= 0"),
    ):
        with pytest.raises(ConfigError, match=f"t.yaml: .*{match}"):
            from_mapping(SpeechTokenizerConfig, {key: value}, "t.yaml")


def test_decoder_batch_crops_whole_stacks_of_aligned_pairs() -> None:
    """Each row is one utterance's coarse and target frames cut at the same stack boundary."""
    pairs = []
    for n in (10, 14, 30):  # frames; utterance i holds the values 1000 * i + frame index
        frames = torch.arange(n, dtype=torch.float32)[:, None] + 1000.0 * len(pairs)
        pairs.append((frames.expand(n, 3), -frames.expand(n, 3)))
    gen = torch.Generator().manual_seed(0)
    for crop in (4, 0, 20):  # in tokens of 2 frames
        for _ in range(20):
            coarse, target = speech_tokenizer._decoder_batch(pairs, 5, crop * 2, 2, gen)
            shortest = min((10, 14, 30)[int(i)] for i in coarse[:, 0, 0] // 1000)
            length = min(crop * 2, shortest) if crop else shortest
            assert coarse.shape == target.shape == (5, length, 3)
            torch.testing.assert_close(target, -coarse)
            assert torch.all(coarse[:, 0, 0] % 1000 % 2 == 0)  # crops start on a stack boundary
            steps = coarse[:, :, 0] - coarse[:, :1, 0]  # consecutive frames of one utterance
            torch.testing.assert_close(steps, torch.arange(float(length)).expand(5, length))


def test_one_whole_utterance_per_step_is_the_default() -> None:
    """batch 1, crop 0: the whole utterance, drawing one index (the earlier decoder training)."""
    pairs = [(torch.full((n, 2), float(n)), torch.zeros(n, 2)) for n in (6, 8, 12)]
    gen, again = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(10):
        coarse, _ = speech_tokenizer._decoder_batch(pairs, 1, 0, 2, gen)
        whole = pairs[int(torch.randint(len(pairs), (1,), generator=again))][0]
        assert torch.equal(coarse, whole[None])


def test_dilated_decoder_context() -> None:
    """Kernel 3 over 3 layers dilated 1, 2, 4 sees 7 frames each side (1, 1, 1 without)."""
    for dilation, reach in ((2, 7), (1, 3)):
        dec = speech_tokenizer.MelDecoder(4, 8, 3, 3, dilation)
        torch.nn.init.normal_(dec.net[-1].weight)
        mel = torch.zeros(1, 31, 4, requires_grad=True)
        dec(mel)[0, 15].sum().backward()
        seen = (mel.grad[0].abs().sum(1) > 0).nonzero().flatten()
        assert seen.min() == 15 - reach and seen.max() == 15 + reach


def test_batched_decoder_training_runs_and_learns() -> None:
    cfg = SpeechTokenizerConfig(num_tokens=16, stack=2, kmeans_iters=20, decoder_channels=16,
                                decoder_layers=3, decoder_steps=60, decoder_lr=3e-3,
                                decoder_dilation=2, decoder_batch=4, decoder_crop=8)  # fmt: skip
    tok = KMeansMelTokenizer.train(_fake_feats(), cfg, MEL)
    mel = _fake_feats(1, seed=11)[0][:40]
    centroid_err = (tok.lookup(tok.encode(mel)) - torch.as_tensor(mel)).abs().mean()
    decoded_err = (tok.decode(tok.encode(mel)) - torch.as_tensor(mel)).abs().mean()
    assert decoded_err < centroid_err
