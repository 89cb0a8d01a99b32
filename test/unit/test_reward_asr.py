"""Reward-ASR interface on a tiny random ESPnet2 encoder–decoder."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from local_lib.bin import train_reward_asr
from local_lib.data.audio import save_audio
from local_lib.data.kaldi_dir import write_data_dir

from local_lib.models.asr_reward import word_index_of
from local_lib.models.asr_units import AsrUnits
from local_lib.models.espnet_asr import (
    CtcPrefixScorer,
    EspnetASRConfig,
    EspnetRewardASR,
    build_espnet_asr,
    pad_waveforms,
)

TEXTS = ["Hello world.", "a fox", "the quick brown fox jumps"]
CONF = Path(__file__).resolve().parents[2] / "egs" / "TEMPLATE" / "conf"


@pytest.fixture(scope="module")
def asr() -> EspnetRewardASR:
    torch.manual_seed(0)
    units = AsrUnits.from_texts(TEXTS)
    cfg = EspnetASRConfig(
        d_model=32, heads=2, ffn=64, encoder_layers=1, decoder_layers=2, dropout=0.0, lsm_weight=0.0
    )
    return EspnetRewardASR(build_espnet_asr(units, cfg), units, cfg)


@pytest.fixture(scope="module")
def wavs() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [0.1 * rng.standard_normal(n).astype(np.float32) for n in (16000, 9000, 12000)]


def test_nll_equals_hand_computed_cross_entropy(asr, wavs):
    ids = asr.vocab.encode(TEXTS[0])
    with torch.no_grad():
        memory, lens = asr.encode(wavs[:1])
        sos = asr.vocab.sos_eos
        dec_in = torch.tensor([[sos] + ids])
        logits, _ = asr.model.decoder(memory, lens, dec_in, torch.tensor([len(ids) + 1]))
        target = torch.tensor(ids + [sos])
        ce = torch.nn.functional.cross_entropy(logits[0], target, reduction="none")
        # ESPnet's own attention loss (label smoothing 0, not length-normalised) is the sum.
        espnet_sum, *_ = asr.model._calc_att_loss(
            memory, lens, torch.tensor([ids]), torch.tensor([len(ids)])
        )
        mean = asr.nll(wavs[:1], TEXTS[:1])
        total = asr.nll(wavs[:1], TEXTS[:1], reduction="sum")
    assert mean.shape == (1,)
    assert float(mean[0]) == pytest.approx(float(ce.mean()), rel=1e-5)
    assert float(total[0]) == pytest.approx(float(ce.sum()), rel=1e-5)
    assert float(total[0]) == pytest.approx(float(espnet_sum), rel=1e-4)


def test_batched_nll_matches_one_by_one_and_is_differentiable(asr, wavs):
    batched = asr.nll(wavs, TEXTS)
    assert batched.shape == (3,) and batched.requires_grad
    with torch.no_grad():
        single = torch.cat([asr.nll([w], [t]) for w, t in zip(wavs, TEXTS)])
    assert torch.allclose(batched.detach(), single, rtol=1e-4, atol=1e-5)


def test_cross_attention_rows_sum_to_one_over_valid_frames(asr, wavs):
    out = asr.cross_attention(wavs, TEXTS)
    _, lens = asr.encode(wavs)
    for att, text, n_frames in zip(out, TEXTS, lens.tolist()):
        n_tokens = len(asr.vocab.encode(text))
        assert att.weights.shape == (n_tokens, n_frames)
        np.testing.assert_allclose(att.weights.sum(axis=1), 1.0, rtol=1e-5)
        assert (att.weights >= 0).all()
        assert att.frame_shift_s == pytest.approx(0.04)
    assert out[0].word_index.tolist() == [0] * 5 + [-1] + [1] * 5


def test_cross_attention_layer_and_head_selection(asr, wavs):
    full = asr.cross_attention(wavs[:1], TEXTS[:1])[0].weights
    layer0 = asr.cross_attention(wavs[:1], TEXTS[:1], layers=[0])[0].weights
    head1 = asr.cross_attention(wavs[:1], TEXTS[:1], layers=[1], heads=[1])[0].weights
    raw = asr.model.decoder.decoders[1].src_attn.attn[0, 1, : full.shape[0]].numpy()
    np.testing.assert_allclose(head1, raw / raw.sum(axis=1, keepdims=True), rtol=1e-5)
    assert not np.allclose(full, layer0)


def test_transcribe_shapes_and_checkpoint_round_trip(asr, wavs, tmp_path):
    hyps = asr.transcribe(wavs, max_len=4)
    assert len(hyps) == 3 and all(isinstance(h, str) and len(h) <= 4 for h in hyps)
    torch.save(asr.checkpoint(), tmp_path / "model.pt")
    again = EspnetRewardASR.from_checkpoint(tmp_path / "model.pt")
    with torch.no_grad():
        assert torch.allclose(again.nll(wavs, TEXTS), asr.nll(wavs, TEXTS))


def test_text_count_mismatch_is_an_error(asr, wavs):
    with pytest.raises(ValueError, match="2 waveforms but 1 texts"):
        asr.nll(wavs[:2], TEXTS[:1])


def test_pad_waveforms():
    batch, lens = pad_waveforms([np.ones(3), np.ones(5)])
    assert batch.shape == (2, 5) and lens.tolist() == [3, 5] and batch[0, 3:].abs().sum() == 0


def test_word_index_of_pieces():
    assert word_index_of([" the", " c", "at", ",", " ", "x", ""]).tolist() == [
        0,
        1,
        1,
        1,
        -1,
        2,
        -1,
    ]
    assert word_index_of(["a", "b", " ", "c"]).tolist() == [0, 0, -1, 1]


def test_ctc_prefix_scores_of_a_full_path_equal_ctc_likelihood():
    torch.manual_seed(1)
    blank, eos, lens = 0, 4, torch.tensor([6, 4])
    logp = torch.log_softmax(torch.randn(2, 6, 5), dim=-1)
    scorer = CtcPrefixScorer(logp, lens, blank, eos)
    seq = [2, 2, 3]  # a repeat needs a blank between, the hardest case of the recursion
    for unit in seq:
        step = scorer.extension_scores()
        scorer.advance(torch.tensor([unit, unit]), step)
    total = scorer.score + scorer.extension_scores()[:, eos]
    ctc = torch.nn.functional.ctc_loss(
        logp.transpose(0, 1),
        torch.tensor([seq, seq]),
        lens,
        torch.tensor([3, 3]),
        blank=blank,
        reduction="none",
    )
    assert torch.allclose(total, -ctc, atol=1e-4)


@pytest.mark.parametrize("decode_ctc_weight", [0.0, 0.3])
def test_batched_greedy_equals_one_by_one_and_stops_at_eos(asr, wavs, decode_ctc_weight):
    torch.manual_seed(2)
    cfg = dataclasses.replace(asr.cfg, decode_ctc_weight=decode_ctc_weight)
    model = build_espnet_asr(asr.vocab, cfg).eval()
    # Bias the output layer towards one letter, then eos: decoding must stop at eos.
    letter = asr.vocab.encode("o")[0]
    with torch.no_grad():
        model.decoder.output_layer.bias.zero_()
        model.decoder.output_layer.bias[letter] = 4.0
        model.ctc.ctc_lo.bias[letter] = 4.0
    tuned = EspnetRewardASR(model, asr.vocab, cfg)
    batched = tuned.transcribe(wavs)
    assert batched == [tuned.transcribe([w])[0] for w in wavs]
    with torch.no_grad():
        model.decoder.output_layer.bias[asr.vocab.sos_eos] = 50.0
        model.ctc.ctc_lo.bias[asr.vocab.blank_id] = 50.0
    assert tuned.transcribe(wavs) == ["", "", ""]


def test_update_budget_sets_epochs_and_spaces_validation(tmp_path):
    rng = np.random.default_rng(3)
    files = {"wav.scp": {}, "text": {}, "utt2spk": {}}
    for i, text in enumerate(TEXTS):
        wav = tmp_path / f"u{i}.wav"
        save_audio(wav, 0.1 * rng.standard_normal(8000 + 2000 * i).astype(np.float32))
        files["wav.scp"][f"u{i}"], files["text"][f"u{i}"] = str(wav), text
        files["utt2spk"][f"u{i}"] = "spk"
    write_data_dir(tmp_path / "data", files)
    conf = yaml.safe_load((CONF / "reward_asr_debug.yaml").read_text())
    conf["train"].update(batch_size=2, epochs=1)
    conf["updates"] = 5  # two batches an epoch: three epochs
    (tmp_path / "conf.yaml").write_text(yaml.safe_dump(conf))
    data, out = str(tmp_path / "data"), tmp_path / "exp"
    argv = ["--config", str(tmp_path / "conf.yaml"), "--train-dir", data, "--valid-dir", data]
    train_reward_asr.main([*argv, "--out-dir", str(out)])
    state = torch.load(out / "model.pt", map_location="cpu", weights_only=False)
    history = state["train_state"]["history"]
    assert [m["epoch"] for m in history] == [1, 2, 3]
    # Short epochs: validation only after the last one.
    assert ["valid_nll" in m for m in history] == [False, False, True]
    assert isinstance(EspnetRewardASR.from_checkpoint(out / "model.pt"), EspnetRewardASR)
    assert yaml.safe_load((out / "config.yaml").read_text())["updates"] == 5
