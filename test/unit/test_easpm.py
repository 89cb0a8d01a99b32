"""EASPM: contrastive training on a separable toy batch, SPO pair noising, accuracy per t-bin."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from local_lib.models.easpm import (
    EASPM,
    EASPMConfig,
    contrastive_loss,
    make_noisy_pairs,
    preference_accuracy_by_t,
)
from local_lib.config import load_config
from local_lib.models.easpm_training import EASPMRecipeConfig
from local_lib.models.gradtts import NoiseSchedule

CONF = Path(__file__).resolve().parents[2] / "egs" / "esd" / "easpo" / "conf"
TINY = EASPMConfig(n_mels=8, dim=16, heads=2, layers=1, ff_dim=32, dropout=0.0, embed_dim=8)


def separable_batch(g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Emotion e raises mel bins 2e, 2e+1 — trivially separable when the noise is small."""
    emotion = torch.arange(4).repeat(3)
    mel = 0.3 * torch.randn(12, 10, 8, generator=g)
    for i, e in enumerate(emotion.tolist()):
        mel[i, :, 2 * e : 2 * e + 2] += 2.0
    mask = torch.arange(10)[None, :] < torch.randint(5, 11, (12,), generator=g)[:, None]
    return mel, mask, emotion


def test_contrastive_loss_decreases_on_separable_batch() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = EASPM(TINY, n_emotions=4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    mel, mask, emotion = separable_batch(g)
    t = torch.full((12,), 0.05)
    losses = []
    for _ in range(25):
        loss = contrastive_loss(model, mel, t, mask, emotion)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert math.isfinite(losses[0]) and losses[-1] < 0.5 * losses[0]
    assert (model.logits(mel, t, mask).argmax(-1) == emotion).float().mean() > 0.9


def test_score_is_scaled_cosine_and_time_matters() -> None:
    torch.manual_seed(0)
    model = EASPM(TINY, n_emotions=4)
    mel, mask, emotion = separable_batch(torch.Generator().manual_seed(1))
    t = torch.rand(12)
    score = model.score(mel, t, mask, emotion)
    cos = (model.embed_audio(mel, t, mask) * model.embed_prompts(emotion)).sum(-1)
    assert torch.allclose(score, cos / 0.07, atol=1e-4)
    assert torch.allclose(
        model.logits(mel, t, mask).gather(1, emotion[:, None])[:, 0], score, atol=1e-5
    )
    # adaLN is zero-initialised: give it weights so the timestep embedding reaches the output
    for p in model.parameters():
        p.data += 0.1 * torch.randn_like(p)
    assert not torch.allclose(
        model.score(mel, t, mask, emotion), model.score(mel, 1 - t, mask, emotion)
    )


def test_noisy_pairs_share_noise_and_time() -> None:
    g = torch.Generator().manual_seed(0)
    schedule = NoiseSchedule()
    x0 = torch.randn(2, 3, 6, 4, generator=g)
    mu = torch.randn(2, 3, 6, 4, generator=g)
    mask = torch.ones(2, 3, 6, dtype=torch.bool)
    mask[1, 2, 4:] = False
    xt, t = make_noisy_pairs(x0, mu, mask, schedule, generator=g)
    assert xt.shape == x0.shape and t.shape == (3,)
    # recover the noise of each member from the closed-form marginal: it must be the same ε
    eps = []
    for i in range(2):
        mean, std = schedule.marginal(x0[i], mu[i], t)
        eps.append((xt[i] - mean * mask[i, ..., None]) / std)
    valid = mask[0] & mask[1]
    assert torch.allclose(eps[0][valid], eps[1][valid], atol=1e-4)
    assert not xt[1, 2, 4:].any()
    # explicit t is used as given
    _, t_given = make_noisy_pairs(x0, mu, mask, schedule, t=torch.tensor([0.1, 0.5, 0.9]))
    assert t_given.tolist() == pytest.approx([0.1, 0.5, 0.9])


def test_preference_accuracy_by_t_bins() -> None:
    t = torch.tensor([0.05, 0.1, 0.45, 0.55, 0.6, 0.95, 1.0])
    win = torch.tensor([1.0, 0.0, 2.0, 3.0, 1.0, 5.0, 5.0])
    lose = torch.tensor([0.0, 1.0, 1.0, 2.0, 1.0, 1.0, 6.0])
    acc = preference_accuracy_by_t(win, lose, t, n_bins=4)
    # bins [0,.25): 1 of 2 right; [.25,.5): 1/1; [.5,.75): 1/2 (a tie is wrong); [.75,1]: 1/2
    assert acc.counts.tolist() == [2, 1, 2, 2]
    assert acc.accuracy.tolist() == [0.5, 1.0, 0.5, 0.5]
    assert acc.edges.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    empty = preference_accuracy_by_t(win[:1], lose[:1], t[:1], n_bins=2)
    assert empty.accuracy[0] == 1.0 and math.isnan(float(empty.accuracy[1]))
    with pytest.raises(ValueError, match="t must lie"):
        preference_accuracy_by_t(win, lose, t + 0.5)


@pytest.mark.parametrize("name", ["easpm_mini.yaml", "easpm.yaml", "easpm_debug.yaml"])
def test_recipe_configs_load(name: str) -> None:
    conf = load_config(CONF / name, EASPMRecipeConfig)
    assert conf.model.n_mels == 80 and conf.train.mu_window % 2 == 1
