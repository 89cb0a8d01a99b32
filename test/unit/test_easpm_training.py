"""EASPM stage-3 training: prior-mean stand-in, group noising, data loading, the CLI end to end."""

from __future__ import annotations

import math
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from local_lib.bin import train_easpm
from local_lib.models.easpm import load_easpm, smoothed_prior_mean
from local_lib.models.easpm_training import (
    attach_prior_means,
    load_emotion_mels,
    noisy_group_batch,
    preference_pairs,
)
from local_lib.models.gradtts import NoiseSchedule
from local_lib.train.trainer import read_metrics

EMOTIONS = ("Angry", "Neutral", "Sad")
N_MELS = 8


def write_fake_corpus(root: Path, name: str, n_sentences: int, seed: int) -> Path:
    """Two speakers read ``n_sentences`` sentences in three emotions; emotion e raises mel bins
    2e and 2e+1 (separable) and Sad utterances are longer. Features go to root/dump/<name>/."""
    rng = np.random.default_rng(seed)
    data, dump = root / "data" / name, root / "dump" / name
    data.mkdir(parents=True)
    dump.mkdir(parents=True)
    rows = []
    for spk in ("0011", "0012"):
        for e, emo in enumerate(EMOTIONS):
            for s in range(n_sentences):
                utt = f"{spk}_{e * 100 + s + 1:06d}"
                frames = 20 + 3 * s + (10 if emo == "Sad" else 0)
                mel = rng.normal(size=(frames, N_MELS)).astype(np.float32) * 0.3
                mel[:, 2 * e : 2 * e + 2] += 2.0
                rows.append((utt, spk, emo, f"sentence number {s}", mel))
    rows.sort(key=lambda r: r[0])
    with kaldiio.WriteHelper(f"ark,scp:{dump / 'feats.ark'},{dump / 'feats.scp'}") as writer:
        for utt, *_, mel in rows:
            writer(utt, mel)
    files = {
        "wav.scp": [f"{r[0]} /nonexistent/{r[0]}.wav" for r in rows],
        "text": [f"{r[0]} {r[3]}" for r in rows],
        "utt2spk": [f"{r[0]} {r[1]}" for r in rows],
        "utt2emo": [f"{r[0]} {r[2]}" for r in rows],
        "spk2utt": [
            f"{spk} " + " ".join(r[0] for r in rows if r[1] == spk) for spk in ("0011", "0012")
        ],
    }
    for fname, lines in files.items():
        (data / fname).write_text("\n".join(lines) + "\n")
    (dump / "utt2num_frames").write_text("".join(f"{r[0]} {len(r[4])}\n" for r in rows))
    return data


def test_smoothed_prior_mean_by_hand() -> None:
    mel = torch.tensor([[[1.0], [2.0], [6.0], [9.0]]])  # one item, 4 frames, 1 bin
    mask = torch.tensor([[True, True, True, False]])
    mu = smoothed_prior_mean(mel, mask, window=3)
    # frame 0: mean(1, 2); frame 1: mean(1, 2, 6); frame 2: mean(2, 6) (frame 3 is padding)
    assert mu[0, :, 0].tolist() == pytest.approx([1.5, 3.0, 4.0, 0.0])
    assert torch.equal(smoothed_prior_mean(mel, mask, 1), mel * mask[..., None])
    with pytest.raises(ValueError, match="odd"):
        smoothed_prior_mean(mel, mask, 2)


def test_load_groups_and_errors(tmp_path: Path) -> None:
    data_dir = write_fake_corpus(tmp_path, "train", n_sentences=4, seed=0)
    data = load_emotion_mels(data_dir, tmp_path / "dump/train/feats.scp")
    assert data.labels == list(EMOTIONS) and len(data.utts) == 24
    # a group is one speaker reading one sentence: three emotions each
    assert len(data.groups) == 8
    assert all(sorted(data.emotions[i] for i in g) == [0, 1, 2] for g in data.groups)
    small = load_emotion_mels(data_dir, tmp_path / "dump/train/feats.scp", max_utts=6)
    assert len(small.utts) == 6 and all(len(g) == 3 for g in small.groups)
    # pairs: ordered (correct, wrong) inside a group, never the same emotion
    pairs = preference_pairs(data, max_pairs=1000)
    assert len(pairs) == 8 * 6 and all(data.emotions[a] != data.emotions[b] for a, b in pairs)
    assert len(preference_pairs(data, max_pairs=10)) == 10
    lines = (tmp_path / "dump/train/feats.scp").read_text().splitlines()
    (tmp_path / "dump/train/feats.scp").write_text("\n".join(lines[1:]) + "\n")
    missing = lines[0].split()[0]
    with pytest.raises(ValueError, match=f"feats.scp: {missing}: no features"):
        load_emotion_mels(data_dir, tmp_path / "dump/train/feats.scp")
    (data_dir / "utt2emo").unlink()
    with pytest.raises(ValueError, match="needs utt2emo"):
        load_emotion_mels(data_dir, tmp_path / "dump/train/feats.scp")


def test_group_members_share_time_and_noise(tmp_path: Path) -> None:
    data_dir = write_fake_corpus(tmp_path, "train", n_sentences=3, seed=1)
    data = load_emotion_mels(data_dir, tmp_path / "dump/train/feats.scp")
    attach_prior_means(data, "neutral", 3, "Neutral")
    schedule = NoiseSchedule()
    batch = noisy_group_batch(data, [0, 4], 16, schedule, torch.Generator().manual_seed(0))
    assert batch.x_t.shape == (6, 16, N_MELS) and batch.mask.all()
    assert batch.t[:3].unique().numel() == 1 and batch.t[3:].unique().numel() == 1
    assert batch.t[0] != batch.t[3]
    # the three emotions of one sentence: same t, same noise, different clean mel
    gen = torch.Generator().manual_seed(0)
    again = noisy_group_batch(data, [0, 4], 16, schedule, gen)
    assert torch.equal(again.x_t, batch.x_t)


def test_prior_means_from_the_neutral_rendering(tmp_path: Path) -> None:
    data_dir = write_fake_corpus(tmp_path, "train", n_sentences=2, seed=2)
    data = load_emotion_mels(data_dir, tmp_path / "dump/train/feats.scp")
    attach_prior_means(data, "neutral", 3, "Neutral")
    neutral = EMOTIONS.index("Neutral")
    for group in data.groups:
        (n,) = [i for i in group if data.emotions[i] == neutral]
        full = torch.ones(1, len(data.mels[n]), dtype=torch.bool)
        smooth = smoothed_prior_mean(data.mels[n][None], full, 3)[0]
        for i in group:
            # every member gets the neutral rendering's smoothed mel, stretched to its length
            assert data.mus[i].shape == data.mels[i].shape
            assert torch.allclose(data.mus[i][0], smooth[0])
            assert torch.allclose(data.mus[i][-1], smooth[-1])
        assert torch.equal(data.mus[n], smooth)
    # the neutral μ lies on the neutral bins (2, 3), not on the item's own emotion bins
    sad = [i for i in range(len(data.utts)) if data.emotions[i] == EMOTIONS.index("Sad")][0]
    assert data.mus[sad][:, 2:4].mean() > 1.5 and data.mus[sad][:, 4:6].mean() < 0.5
    attach_prior_means(data, "self", 1, "Neutral")
    assert all(torch.equal(m, x) for m, x in zip(data.mus, data.mels))
    with pytest.raises(ValueError, match="no 'Calm' among the emotions"):
        attach_prior_means(data, "neutral", 3, "Calm")
    lonely = load_emotion_mels(data_dir, tmp_path / "dump/train/feats.scp")
    lonely.groups = [[i] for i in range(len(lonely.utts)) if lonely.emotions[i] != neutral]
    with pytest.raises(ValueError, match="has no Neutral rendering"):
        attach_prior_means(lonely, "neutral", 3, "Neutral")


def test_train_easpm_cli_end_to_end_and_resume(tmp_path: Path) -> None:
    write_fake_corpus(tmp_path, "train", n_sentences=4, seed=0)
    write_fake_corpus(tmp_path, "dev", n_sentences=2, seed=1)
    conf = tmp_path / "easpm.yaml"
    conf.write_text(
        f"model: {{n_mels: {N_MELS}, dim: 16, heads: 2, layers: 1, ff_dim: 32, dropout: 0.0, "
        "embed_dim: 8}\n"
        "train: {num_steps: 40, groups_per_batch: 4, crop_frames: 24, lr: 0.003, warmup_steps: 2, "
        "mu_window: 3, log_every: 10, save_every: 20, eval_bins: 4, eval_pairs: 24}\n"
    )
    out = tmp_path / "exp/easpm"
    args = ["--config", str(conf), "--seed", "0", "--train-dir", str(tmp_path / "data/train"),
            "--valid-dir", str(tmp_path / "data/dev"), "--out-dir", str(out),
            "--feats-root", str(tmp_path / "dump")]  # fmt: skip
    train_easpm.main(args)
    bundle = load_easpm(out / "model.pt")
    assert bundle.emotions == list(EMOTIONS) and bundle.mu_window == 3
    assert not any(p.requires_grad for p in bundle.model.parameters())
    metrics = read_metrics(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [10, 20, 30, 40]
    assert metrics[-1]["loss"] < metrics[0]["loss"] and math.isfinite(metrics[-1]["acc"])
    rows = (out / "preference_accuracy_vs_t.tsv").read_text().splitlines()
    assert rows[0] == "t_lo\tt_hi\taccuracy\tpairs" and len(rows) == 5
    low_t_accuracy = float(rows[1].split("\t")[2])
    assert low_t_accuracy > 0.8  # separable emotions, almost clean mel: the scorer ranks them
    assert (out / "preference_accuracy_vs_t.png").stat().st_size > 0
    assert "num_steps: 40\n" in (out / "config.yaml").read_text()
    assert (out / "command.sh").is_file()
    # a re-run finds the final checkpoint, trains nothing and writes the same scorer
    state = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    train_easpm.main(args)
    again = load_easpm(out / "model.pt").model.state_dict()
    assert all(torch.equal(state[k], again[k]) for k in state)
    assert len(read_metrics(out / "metrics.jsonl")) == 4
