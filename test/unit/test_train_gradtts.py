"""Grad-TTS stage 4: the model file round trip and the training tool on a tiny data dir."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from local_lib.bin.train_gradtts import (
    decoder_lr_factor,
    encoder_lr_factor,
    lr_factor,
    param_groups,
)
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.gradtts import GradTTS, GradTTSBundle, load_gradtts
from local_lib.models.gradtts.recipe_config import GradTTSTrainSection
from tiny_gradtts import TINY_GRADTTS as TINY


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


def write_data(root: Path, n_per_emotion: int = 2) -> tuple[Path, Path]:
    """A tiny data dir (2 speakers x 2 emotions) and a dump dir with random 80-bin log-mels."""
    import kaldiio
    import numpy as np

    data, dump = root / "data", root / "dump"
    data.mkdir()
    dump.mkdir()
    rng = np.random.default_rng(0)
    texts, spk, emo, wav, feats = {}, {}, {}, {}, {}
    for s in ("0011", "0012"):
        for e, emotion in enumerate(("Happy", "Sad")):
            for i in range(n_per_emotion):
                utt = f"{s}_{e:02d}{i:04d}"
                texts[utt] = ["the cat sat", "a dog ran home"][i % 2]
                spk[utt], emo[utt], wav[utt] = s, emotion, f"/nonexistent/{utt}.wav"
                feats[utt] = (rng.standard_normal((30 + 3 * i, 80)) - 5.0).astype(np.float32)
    for name, table in (("text", texts), ("utt2spk", spk), ("utt2emo", emo), ("wav.scp", wav)):
        (data / name).write_text("".join(f"{u} {v}\n" for u, v in sorted(table.items())))
    spk2utt: dict[str, list[str]] = {}
    for u, s in sorted(spk.items()):
        spk2utt.setdefault(s, []).append(u)
    (data / "spk2utt").write_text("".join(f"{s} {' '.join(u)}\n" for s, u in spk2utt.items()))
    with kaldiio.WriteHelper(f"ark,scp:{dump}/feats.ark,{dump}/feats.scp") as writer:
        for utt in sorted(feats):
            writer(utt, feats[utt])
    return data, dump


TRAIN_YAML = """
model: {{cond_dim: 8, enc_channels: 16, enc_filter_channels: 32, enc_layers: 1,
        prenet_layers: 1, dp_filter_channels: 16, dec_kind: conv1d, dec_blocks: 2,
        dec_dim: 16, dec_groups: 4, segment_frames: 16}}
train: {{num_steps: {steps}, batch_size: 4, lr: 0.002, warmup_steps: 2, log_every: 2,
        save_every: 2, valid_every: 2, valid_utts: 4, decoder_steps: {decoder_steps},
        keep_checkpoints: 0}}
"""


def train(
    tmp_path: Path, data: Path, dump: Path, out: Path, steps: int, decoder_steps: int = 0
) -> None:
    from local_lib.bin import train_gradtts

    conf = tmp_path / f"gradtts_{steps}_{decoder_steps}.yaml"
    conf.write_text(TRAIN_YAML.format(steps=steps, decoder_steps=decoder_steps))
    train_gradtts.main([
        "--config", str(conf), "--train-dir", str(data), "--valid-dir", str(data),
        "--feats-dir", str(dump), "--valid-feats-dir", str(dump), "--out-dir", str(out),
    ])  # fmt: skip


def test_train_tool_writes_a_loadable_model_dev_losses_and_resumes_exactly(
    tmp_path: Path,
) -> None:
    from local_lib.train.trainer import read_metrics

    data, dump = write_data(tmp_path)
    train(tmp_path, data, dump, tmp_path / "straight", steps=4)
    bundle = load_gradtts(tmp_path / "straight" / "model.pt")
    assert bundle.speakers == ["0011", "0012"] and bundle.emotions == ["Happy", "Sad"]
    assert bundle.model.cfg.dec_kind == "conv1d"
    saved = yaml.safe_load((tmp_path / "straight" / "config.yaml").read_text())
    assert saved["train"]["num_steps"] == 4 and saved["model"]["dec_dim_mults"] == [1, 2, 4]
    assert (tmp_path / "straight" / "command.sh").is_file()
    records = read_metrics(tmp_path / "straight" / "metrics.jsonl")
    assert [r["step"] for r in records] == [2, 4]
    for r in records:
        assert all(math.isfinite(r[k]) for k in ("loss", "prior", "duration", "diffusion"))
        assert math.isfinite(r["dev/loss"])
        parts = r["dev/prior"] + r["dev/duration"] + r["dev/diffusion"]
        assert r["dev/loss"] == pytest.approx(parts)
    # A run stopped after 2 steps and restarted with the 4-step budget ends where the straight
    # run ended: batches and noise are functions of the step, RNG and optimizer state restored.
    # (The first training in a process differs from later ones by ~1e-5 of CPU kernel set-up
    # noise; a lost or repeated Adam step at lr 2e-3 moves weights by ~1e-3.)
    train(tmp_path, data, dump, tmp_path / "resumed", steps=2)
    train(tmp_path, data, dump, tmp_path / "resumed", steps=4)
    resumed = load_gradtts(tmp_path / "resumed" / "model.pt")
    for key, value in bundle.model.state_dict().items():
        assert torch.allclose(resumed.model.state_dict()[key], value, rtol=0, atol=1e-4), key


def test_train_tool_names_an_utterance_without_features(tmp_path: Path) -> None:
    data, dump = write_data(tmp_path)
    scp = dump / "feats.scp"
    lines = scp.read_text().splitlines()
    scp.write_text("\n".join(lines[1:]) + "\n")
    missing = lines[0].split()[0]
    with pytest.raises(ValueError, match=f"feats.scp: {missing}: no feature matrix"):
        train(tmp_path, data, dump, tmp_path / "out", steps=2)


def test_lr_factor_warms_up_then_holds_or_anneals_by_cosine() -> None:
    const = GradTTSTrainSection(num_steps=10, warmup_steps=2)
    assert [lr_factor(s, const) for s in (0, 1, 5, 9)] == [0.5, 1.0, 1.0, 1.0]
    cos = GradTTSTrainSection(num_steps=10, warmup_steps=2, lr_schedule="cosine", min_lr_ratio=0.1)
    # step s (0-based) is the (s+1)-th update; cosine progress (s+1-2)/(10-2)
    expected = [0.5, 1.0, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 4 / 8)), 0.1]
    got = [lr_factor(s, cos) for s in (0, 1, 5, 9)]
    assert got == pytest.approx(expected)
    assert got[2] == pytest.approx(0.55)
    with pytest.raises(ValueError, match="lr_schedule"):
        GradTTSTrainSection(lr_schedule="linear")


def test_decoder_phase_schedules_by_hand() -> None:
    cfg = GradTTSTrainSection(
        num_steps=10, warmup_steps=2, lr=2e-3, lr_schedule="cosine", min_lr_ratio=0.1,
        decoder_steps=4, decoder_lr=5e-4,
    )  # fmt: skip
    assert cfg.total_steps == 14 and cfg.trainer_config(Path("x")).num_steps == 14
    for s in range(10):  # the joint steps: both groups follow the joint schedule
        assert encoder_lr_factor(s, cfg) == decoder_lr_factor(s, cfg) == lr_factor(s, cfg)
    assert [encoder_lr_factor(s, cfg) for s in range(10, 14)] == [0.0] * 4
    # decoder phase step j = 0..3: 0.25·(0.1 + 0.9·(1 + cos(π(j+1)/4))/2), decoder_lr/lr = 0.25
    expected = [0.25 * (0.1 + 0.45 * (1 + math.cos(math.pi * (j + 1) / 4))) for j in range(4)]
    assert [decoder_lr_factor(s, cfg) for s in range(10, 14)] == pytest.approx(expected)
    assert decoder_lr_factor(13, cfg) == pytest.approx(0.025)  # min_lr_ratio · decoder_lr / lr
    with pytest.raises(ValueError, match="decoder_steps"):
        GradTTSTrainSection(decoder_steps=-1)
    with pytest.raises(ValueError, match="decoder_lr"):
        GradTTSTrainSection(decoder_lr=0.0)


def test_param_groups_split_the_decoder_from_the_encoder() -> None:
    model = tiny_bundle().model
    rest, encoder = param_groups(model)
    enc_ids = {id(p) for p in model.encoder.parameters()}
    dec_ids = {id(p) for p in model.decoder.parameters()}
    assert {id(p) for p in encoder["params"]} == enc_ids
    assert {id(p) for p in rest["params"]} == dec_ids
    assert len(encoder["params"]) + len(rest["params"]) == len(list(model.parameters()))


def test_decoder_phase_leaves_the_encoder_and_trains_the_decoder(tmp_path: Path) -> None:
    from local_lib.train.checkpoint import latest_checkpoint, load_checkpoint
    from local_lib.train.trainer import read_metrics

    data, dump = write_data(tmp_path)
    out = tmp_path / "phased"
    train(tmp_path, data, dump, out, steps=2, decoder_steps=4)
    final = load_gradtts(out / "model.pt").model
    joint = GradTTS(final.cfg, final.vocab_size, n_speakers=2, n_emotions=2)
    load_checkpoint(out / "checkpoints" / "checkpoint_00000002.pt", joint)
    assert latest_checkpoint(out / "checkpoints").name == "checkpoint_00000006.pt"
    for key, value in joint.encoder.state_dict().items():
        assert torch.equal(final.encoder.state_dict()[key], value), key
    moved = [
        key for key, value in joint.decoder.state_dict().items()
        if not torch.equal(final.decoder.state_dict()[key], value)
    ]  # fmt: skip
    assert moved, "the decoder did not train in its phase"
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [2, 4, 6]
    assert records[-1]["lr"] == pytest.approx(5e-5)  # the decoder's: 0.1 · decoder_lr
    assert all(math.isfinite(r["dev/diffusion"]) for r in records)


@pytest.mark.slow
def test_decoder_phase_under_two_gloo_processes(tmp_path: Path) -> None:
    """DDP needs a gradient for every parameter it was built with: in the decoder phase the frozen
    encoder's come as zeros, so two processes train through the phase and agree on the weights."""
    import os
    import subprocess
    import sys

    from local_lib.train.checkpoint import load_checkpoint

    repo = Path(__file__).resolve().parents[2]
    data, dump = write_data(tmp_path)
    conf = tmp_path / "gradtts.yaml"
    conf.write_text(TRAIN_YAML.format(steps=2, decoder_steps=2))
    out = tmp_path / "ddp"
    cmd = [
        "bash", str(repo / "utils" / "launch.sh"), "--nproc", "2", "--python", sys.executable,
        "--", "local_lib.bin.train_gradtts", "--config", str(conf), "--train-dir", str(data),
        "--valid-dir", str(data), "--feats-dir", str(dump), "--valid-feats-dir", str(dump),
        "--out-dir", str(out),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo))
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    final = load_gradtts(out / "model.pt").model
    joint = GradTTS(final.cfg, final.vocab_size, n_speakers=2, n_emotions=2)
    load_checkpoint(out / "checkpoints" / "checkpoint_00000002.pt", joint)
    for key, value in joint.encoder.state_dict().items():
        assert torch.equal(final.encoder.state_dict()[key], value), key
    assert any(
        not torch.equal(final.decoder.state_dict()[k], v)
        for k, v in joint.decoder.state_dict().items()
    )
