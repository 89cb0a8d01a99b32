"""Stage 3 of HPRO: the reward codec's word targets by hand, its trainer and the decoupling
check on a tiny corpus."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from codec_lm_data import NUM_TOKENS, make_tokenizer

from local_lib.bin import reward_codec_decoupling, train_reward_codec
from local_lib.bin.train_reward_codec import Contours, speaker_contours, word_targets
from local_lib.data.kaldi_dir import write_data_dir
from local_lib.data.speech_tokens import write_speech_tokens
from local_lib.models.reward_codec import load_reward_codec

EMOTIONS = {"Angry": 220.0, "Sad": 110.0}
TEXTS = ["a cat", "the dog sat", "big red dog", "ran off"]


def test_word_targets_by_hand():
    contours = Contours([np.array([np.nan, 1.0, 3.0, 5.0])], [np.array([0.0, 2.0, 4.0, 6.0])], 2.0)
    spans = torch.tensor([[[0, 1], [1, 2], [0, 0]]])
    # word 0: frames 0-1, voiced log-F0 [1]; word 1: frames 2-3, voiced [3, 5]; word 2: padding
    expected = [[[1.0, 0.0, 1.0], [4.0, 1.0, 5.0], [0.0, 0.0, 0.0]]]
    assert word_targets(contours, [0], spans).tolist() == expected


def test_speaker_contours_are_z_scored_per_speaker():
    t = np.arange(16000) / 16000
    loud, quiet = 0.5 * np.sin(2 * np.pi * 200 * t), 0.05 * np.sin(2 * np.pi * 100 * t)
    out = speaker_contours([loud, quiet, quiet], ["a", "a", "b"], token_rate=31.25)
    assert out.frames_per_token == pytest.approx(2.0)
    assert np.nanmean(out.energy[0]) > 0 > np.nanmean(out.energy[1])  # loud vs quiet for a
    assert np.nanmean(out.log_f0[0]) > 0 > np.nanmean(out.log_f0[1])
    assert abs(np.nanmean(out.energy[2])) < 1e-6  # b's only utterance is its own mean


def _data_dir(root: Path, speakers: list[str], seed: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    files = {"text": {}, "utt2spk": {}, "wav.scp": {}, "utt2emo": {}}
    tokens = {}
    for spk in speakers:
        for k, (emotion, hz) in enumerate(sorted(EMOTIONS.items()) * 2):
            utt = f"{spk}_{k:03d}"
            t = np.arange(8000) / 16000
            wav = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
            (root / "wav").mkdir(parents=True, exist_ok=True)
            sf.write(root / "wav" / f"{utt}.wav", wav, 16000)
            files["text"][utt], files["utt2spk"][utt] = TEXTS[k], spk
            files["wav.scp"][utt], files["utt2emo"][utt] = str(root / "wav" / f"{utt}.wav"), emotion
            tokens[utt] = rng.integers(0, NUM_TOKENS, 16).tolist()
    write_data_dir(root / "data", files)
    write_speech_tokens(root / "speech_tokens", tokens)
    return root / "data", root / "speech_tokens"


def test_trainer_writes_a_model_and_logs_each_heads_accuracy(tmp_path: Path) -> None:
    make_tokenizer(tmp_path / "tokenizer.pt")
    train_dir, train_tokens = _data_dir(tmp_path / "train", ["s1", "s2"], 0)
    dev_dir, dev_tokens = _data_dir(tmp_path / "dev", ["s1"], 1)
    (tmp_path / "conf.yaml").write_text(
        "model: {embed_dim: 8, channels: 8, encoder_layers: 1, head_layers: 1, dropout: 0.0,\n"
        "        content_levels: [5, 5], style_levels: [3]}\n"
        "train: {epochs: 2, batch_size: 4, lr: 0.01}\n"
        "token_noise: 0.1\n"
    )
    out = tmp_path / "exp"
    train_reward_codec.main([
        "--config", str(tmp_path / "conf.yaml"), "--seed", "3", "--train-dir", str(train_dir),
        "--valid-dir", str(dev_dir), "--out-dir", str(out), "--tokenizer",
        str(tmp_path / "tokenizer.pt"), "--train-tokens", str(train_tokens),
        "--valid-tokens", str(dev_tokens),
    ])  # fmt: skip
    codec = load_reward_codec(out / "model.pt")
    assert codec.emotions == ["Angry", "Sad"] and codec.word_dims == 3
    assert codec.net.content_fsq.levels == (5, 5) and codec.net.num_speech_tokens == NUM_TOKENS
    last = torch.load(out / "model.pt", weights_only=False)["train_state"]["history"][-1]
    assert last["epoch"] == 2
    for key in ("recon_acc", "valid_cer", "dev_acc_emotion"):
        assert 0.0 <= last[key] <= 1.0 or key == "valid_cer", key
    assert -1.0 <= last["word_ccc"] <= 1.0
    assert "seed: 3" in (out / "config.yaml").read_text()
    report_path = tmp_path / "decoupling.json"
    reward_codec_decoupling.main([
        "--model", str(out / "model.pt"), "--train-dir", str(train_dir), "--train-tokens",
        str(train_tokens), "--valid-dir", str(dev_dir), "--valid-tokens", str(dev_tokens),
        "--out", str(report_path), "--steps", "5",
    ])  # fmt: skip
    report = json.loads(report_path.read_text())
    assert report["emotion_chance"] == 0.5
    for stream in ("content", "style"):
        assert 0.0 <= report[f"emotion_acc_{stream}"] <= 1.0 and report[f"cer_{stream}"] >= 0.0
    with pytest.raises(SystemExit):  # no speech tokens given
        train_reward_codec.main([
            "--config", str(tmp_path / "conf.yaml"), "--train-dir", str(train_dir),
            "--valid-dir", str(dev_dir), "--out-dir", str(tmp_path / "x"),
        ])  # fmt: skip
