"""EASPM with base negatives [ours]: the loss by hand, the pair batches, and train_easpm with a
tiny base Grad-TTS end to end."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from test_easpm_training import EMOTIONS, N_MELS, write_fake_corpus
from test_easpo_loop import TINY_TTS

from local_lib.bin import train_easpm
from local_lib.config import load_config
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.easpm import base_negative_loss, load_easpm
from local_lib.models.easpm_training import (
    BaseNegatives,
    BasePairs,
    EASPMRecipeConfig,
    NoisyBatch,
    easpm_loss,
    join_batches,
    noisy_base_pairs,
)
from local_lib.models.gradtts import GradTTS, GradTTSBundle, NoiseSchedule
from local_lib.rl.easpo_loop import EASPORecipeConfig
from local_lib.train.trainer import read_metrics

CONF = Path(__file__).resolve().parents[2] / "egs" / "TEMPLATE" / "conf"


def test_base_negative_loss_by_hand() -> None:
    natural, base = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0])
    # -log sigmoid(1) = log(1 + e^-1) = 0.3132617, -log sigmoid(0) = log 2 = 0.6931472
    assert float(base_negative_loss(natural, base)) == pytest.approx(0.5032044, abs=1e-6)
    with pytest.raises(ValueError, match="two equal 1-D"):
        base_negative_loss(natural, base[:1])


def test_easpm_loss_with_pairs_by_hand() -> None:
    """Two group items (emotions 0 and 1) and one pair of target emotion 1.

    CLEP: audio -> prompt: item 0 [2, 0] -> log(1 + e^-2) = 0.1269280, item 1 [0, 1] ->
    log(1 + e^-1) = 0.3132617, mean 0.2200948; prompt -> audio: prompt 0 sees [2, 0] (the same
    0.1269280), prompt 1 sees [0, 1] (0.3132617), mean 0.2200948; CLEP = 0.2200948.
    Pair: the natural scores 3 and the base output 1 for emotion 1: log(1 + e^-2) = 0.1269280;
    with weight 0.5 the total is 0.2200948 + 0.0634640 = 0.2835588.
    """
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 3.0], [0.0, 1.0]])
    emotion = torch.tensor([0, 1, 1, 1])
    loss, stats = easpm_loss(logits, emotion, n_pairs=1, weight=0.5)
    assert float(loss) == pytest.approx(0.2835588, abs=1e-6)
    assert stats["loss_clep"] == pytest.approx(0.2200948, abs=1e-6)
    assert stats["loss_base"] == pytest.approx(0.1269280, abs=1e-6)
    assert stats == pytest.approx({"acc": 1.0, "loss_clep": 0.2200948, "loss_base": 0.1269280,
                                   "base_pair_acc": 1.0}, abs=1e-6)  # fmt: skip
    # without pairs: the paper's CLEP loss alone, and only its accuracy
    clep, stats = easpm_loss(logits[:2], emotion[:2], n_pairs=0, weight=0.5)
    assert float(clep) == pytest.approx(0.2200948, abs=1e-6) and stats == {"acc": 1.0}
    # the base output above the natural: the pair is wrong, its loss log(1 + e^2) = 2.1269280
    _, stats = easpm_loss(logits[[0, 1, 3, 2]], emotion, n_pairs=1, weight=0.5)
    assert stats["base_pair_acc"] == 0.0 and stats["loss_base"] == pytest.approx(2.126928, 1e-6)
    with pytest.raises(ValueError, match="cannot hold 2 pairs"):
        easpm_loss(logits, emotion, n_pairs=2, weight=0.5)


def tiny_pairs() -> BasePairs:
    """Two prompts; natural and base output of different lengths, the base's μ stretched."""
    torch.manual_seed(0)
    natural = [torch.randn(30, N_MELS), torch.randn(12, N_MELS)]
    base = [torch.randn(20, N_MELS), torch.randn(16, N_MELS)]
    mu = [torch.randn(20, N_MELS), torch.randn(16, N_MELS)]
    natural_mu = [torch.randn(30, N_MELS), torch.randn(12, N_MELS)]
    return BasePairs(["a", "b"], natural, base, natural_mu, mu, [2, 0])


def test_pair_members_share_time_and_noise() -> None:
    pairs = tiny_pairs()
    batch = noisy_base_pairs(pairs, [1, 0], 16, NoiseSchedule(), torch.Generator().manual_seed(3))
    # naturals first (prompts 1, 0), then the base outputs in the same order
    assert batch.emotion.tolist() == [0, 2, 0, 2]
    assert batch.x_t.shape == (4, 16, N_MELS)
    assert batch.mask.sum(1).tolist() == [12, 16, 16, 16]
    assert torch.equal(batch.t[:2], batch.t[2:]) and batch.t[0] != batch.t[1]
    # identical members noise to identical states: the same t and the same ε
    same = BasePairs(["a"], [pairs.base[0]], [pairs.base[0]], [pairs.base_mu[0]],
                     [pairs.base_mu[0]], [1])  # fmt: skip
    twin = noisy_base_pairs(same, [0], 8, NoiseSchedule(), torch.Generator().manual_seed(0))
    assert torch.equal(twin.x_t[0], twin.x_t[1])


def test_join_batches_pads_frames() -> None:
    def batch(n: int, frames: int, emotion: int) -> NoisyBatch:
        return NoisyBatch(torch.ones(n, frames, N_MELS), torch.ones(n, frames, dtype=torch.bool),
                          torch.full((n,), 0.5), torch.full((n,), emotion))  # fmt: skip

    joined = join_batches(batch(2, 5, 0), batch(1, 7, 1))
    assert joined.x_t.shape == (3, 7, N_MELS) and joined.emotion.tolist() == [0, 0, 1]
    assert joined.mask.sum(1).tolist() == [5, 5, 7]
    assert float(joined.x_t[:2, 5:].abs().sum()) == 0.0


def test_base_negatives_config_checks() -> None:
    with pytest.raises(ValueError, match="pairs_per_batch, pool_size and n_steps"):
        BaseNegatives(pairs_per_batch=0)
    with pytest.raises(ValueError, match="weight, temperature"):
        BaseNegatives(weight=0.0)


@pytest.mark.parametrize("suffix", ["", "_mini", "_debug"])
def test_baseneg_configs_are_the_paper_ones_plus_base_negatives(suffix: str) -> None:
    """The variant changes the scorer alone: its EASPM is the paper's config plus the section,
    its EASPO the main run's settings."""
    paper = load_config(CONF / f"easpm{suffix}.yaml", EASPMRecipeConfig)
    variant = load_config(CONF / f"easpm_baseneg{suffix}.yaml", EASPMRecipeConfig)
    assert paper.base_negatives is None and variant.base_negatives is not None
    assert dataclasses.replace(variant, base_negatives=None) == paper
    main = load_config(CONF / f"easpo{suffix}.yaml", EASPORecipeConfig)
    assert load_config(CONF / f"easpo_baseneg{suffix}.yaml", EASPORecipeConfig) == main


CONFIG = (
    f"model: {{n_mels: {N_MELS}, dim: 16, heads: 2, layers: 1, ff_dim: 32, dropout: 0.0, "
    "embed_dim: 8}\n"
    "train: {num_steps: 6, groups_per_batch: 2, crop_frames: 24, lr: 0.003, warmup_steps: 2, "
    "mu_window: 3, log_every: 3, save_every: 3, eval_bins: 2, eval_pairs: 8}\n"
)


def test_train_easpm_with_base_negatives(tmp_path: Path) -> None:
    data_dir = write_fake_corpus(tmp_path, "train", n_sentences=3, seed=0)
    write_fake_corpus(tmp_path, "dev", n_sentences=2, seed=1)
    texts = [line.split(maxsplit=1)[1] for line in (data_dir / "text").read_text().splitlines()]
    torch.manual_seed(0)
    tokenizer = CharTokenizer.build(texts)
    tts = GradTTS(TINY_TTS, tokenizer.vocab_size, n_speakers=2, n_emotions=3)
    GradTTSBundle(tts, tokenizer, ["0011", "0012"], list(EMOTIONS)).save(tmp_path / "base.pt")
    plain, conf = tmp_path / "easpm.yaml", tmp_path / "easpm_baseneg.yaml"
    plain.write_text(CONFIG)
    conf.write_text(CONFIG + "base_negatives: {weight: 0.5, pairs_per_batch: 3, pool_size: 4, "
                    "n_steps: 2}\n")  # fmt: skip
    out = tmp_path / "exp/easpm_baseneg"
    common = ["--seed", "0", "--train-dir", str(data_dir), "--feats-root", str(tmp_path / "dump"),
              "--valid-dir", str(tmp_path / "data/dev")]  # fmt: skip
    train_easpm.main(["--config", str(conf), *common, "--out-dir", str(out),
                      "--base-model", str(tmp_path / "base.pt")])  # fmt: skip
    assert load_easpm(out / "model.pt").emotions == list(EMOTIONS)
    metrics = read_metrics(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [3, 6]
    for m in metrics:
        assert m["loss"] == pytest.approx(m["loss_clep"] + 0.5 * m["loss_base"], rel=1e-5)
        assert 0.0 <= m["base_pair_acc"] <= 1.0 and math.isfinite(m["loss_base"])
    assert "weight: 0.5" in (out / "config.yaml").read_text()
    # the section and the base model go together
    with pytest.raises(ValueError, match="base_negatives section and --base-model go together"):
        train_easpm.main(["--config", str(conf), *common, "--out-dir", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="base_negatives section and --base-model go together"):
        train_easpm.main(["--config", str(plain), *common, "--out-dir", str(tmp_path / "y"),
                          "--base-model", str(tmp_path / "base.pt")])  # fmt: skip
