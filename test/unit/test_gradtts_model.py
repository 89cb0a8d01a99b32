"""Grad-TTS model: losses, training progress on a toy batch, sampler shapes, configs."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from local_lib.models.gradtts import EncoderOutput, GradTTS
from local_lib.models.gradtts.alignment import (
    expand_by_path,
    mel_log_likelihood,
    path_from_durations,
)
from local_lib.config import ConfigError, load_config
from local_lib.models.gradtts.recipe_config import GradTTSRecipeConfig, GradTTSSynthConfig
from tiny_gradtts import TINY_GRADTTS as TINY

CONF = Path(__file__).resolve().parents[2] / "egs" / "esd" / "easpo" / "conf"


def toy_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    text = torch.randint(1, 12, (3, 6), generator=g)
    text_lengths = torch.tensor([6, 4, 3])
    text[1, 4:] = 0
    text[2, 3:] = 0
    mel_lengths = torch.tensor([21, 14, 9])
    mel = torch.randn(3, 21, 16, generator=g) - 4.0
    mel = mel * (torch.arange(21)[None, :, None] < mel_lengths[:, None, None])
    return {
        "text": text,
        "text_lengths": text_lengths,
        "mel": mel,
        "mel_lengths": mel_lengths,
        "speaker": torch.tensor([0, 1, 0]),
        "emotion": torch.tensor([2, 0, 1]),
    }


def test_mel_log_likelihood_matches_direct_gaussian() -> None:
    g = torch.Generator().manual_seed(0)
    mu, mel = torch.randn(2, 3, 5, generator=g), torch.randn(2, 7, 5, generator=g)
    direct = torch.distributions.Normal(mu[:, :, None, :], 1.0).log_prob(mel[:, None, :, :]).sum(-1)
    assert torch.allclose(mel_log_likelihood(mu, mel), direct, atol=1e-5)


def test_duration_path_expands_tokens() -> None:
    path = path_from_durations(torch.tensor([[2, 1, 3]]), 7)
    assert path.sum().item() == 6 and path[0, :, 6].sum() == 0
    values = torch.tensor([[[1.0], [2.0], [3.0]]])
    assert expand_by_path(values, path)[0, :, 0].tolist() == [1, 1, 2, 3, 3, 3, 0]


@pytest.mark.parametrize(
    "dec_kind, score_param", [("unet", "score"), ("conv1d", "score"), ("conv1d", "eps")]
)
def test_losses_finite_and_decrease(dec_kind: str, score_param: str) -> None:
    torch.manual_seed(0)
    cfg = dataclasses.replace(
        TINY, dec_kind=dec_kind, dec_blocks=2, dec_dim=16, score_param=score_param
    )
    model = GradTTS(cfg, vocab_size=12, n_speakers=2, n_emotions=3)
    batch = toy_batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for step in range(10):
        losses = model.compute_losses(**batch, generator=torch.Generator().manual_seed(step % 3))
        assert all(torch.isfinite(v) for v in losses.values())
        assert torch.allclose(
            losses["loss"], losses["prior"] + losses["duration"] + losses["diffusion"]
        )
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    first, last = history[:3], history[-3:]
    for key in ("prior", "duration", "loss"):
        assert sum(h[key] for h in last) < sum(h[key] for h in first), key


def test_duration_loss_does_not_reach_encoder() -> None:
    torch.manual_seed(0)
    model = GradTTS(TINY, vocab_size=12)
    batch = toy_batch()
    batch.pop("speaker")
    batch.pop("emotion")
    model.compute_losses(**batch)["duration"].backward()
    assert (
        model.encoder.embedding.weight.grad is None or not model.encoder.embedding.weight.grad.any()
    )
    assert model.encoder.duration.proj.weight.grad.abs().sum() > 0


def test_frozen_encoder_gives_the_same_losses_and_only_the_decoders_gradient() -> None:
    torch.manual_seed(0)
    model = GradTTS(TINY, vocab_size=12, n_speakers=2, n_emotions=3).eval()  # no dropout
    batch = toy_batch()
    joint = model.compute_losses(**batch, generator=torch.Generator().manual_seed(1))
    joint["diffusion"].backward()
    decoder_grads = {n: p.grad.clone() for n, p in model.decoder.named_parameters()}
    model.zero_grad(set_to_none=True)
    frozen = model.compute_losses(
        **batch, generator=torch.Generator().manual_seed(1), train_encoder=False
    )
    for key in ("prior", "duration", "diffusion", "loss"):
        assert torch.equal(frozen[key], joint[key]), key
    assert not frozen["prior"].requires_grad and not frozen["duration"].requires_grad
    frozen["loss"].backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    for name, param in model.decoder.named_parameters():
        assert torch.allclose(param.grad, decoder_grads[name], rtol=1e-4, atol=1e-6), name


def test_segments_crop_diffusion_loss() -> None:
    torch.manual_seed(0)
    model = GradTTS(
        dataclasses.replace(TINY, segment_frames=8), vocab_size=12, n_speakers=2, n_emotions=3
    )
    losses = model.compute_losses(**toy_batch())
    assert torch.isfinite(losses["diffusion"])


@pytest.mark.parametrize("ode", [False, True])
def test_synthesis_shapes(ode: bool) -> None:
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, dec_attention=True)
    model = GradTTS(cfg, vocab_size=12, n_speakers=2, n_emotions=3).eval()
    b = toy_batch()

    def synthesise() -> tuple[torch.Tensor, torch.Tensor]:
        return model.synthesise(
            b["text"], b["text_lengths"], b["speaker"], b["emotion"],
            n_steps=3, ode=ode, generator=torch.Generator().manual_seed(0),
        )  # fmt: skip

    mel, lengths = synthesise()
    assert mel.shape == (3, int(lengths.max()), 16)
    assert (lengths >= b["text_lengths"]).all()
    assert torch.isfinite(mel).all()
    for i, n in enumerate(lengths.tolist()):
        assert not mel[i, n:].any()
    # the same seed gives the same SDE sample; the ODE is deterministic given the prior draw
    again, _ = synthesise()
    assert torch.equal(mel, again)


def test_zero_steps_give_the_prior_mean_alone() -> None:
    torch.manual_seed(0)
    model = GradTTS(TINY, vocab_size=12, n_speakers=2, n_emotions=3).eval()
    b = toy_batch()
    args = (b["text"], b["text_lengths"], b["speaker"], b["emotion"])
    mel, lengths = model.synthesise(*args, n_steps=0, temperature=0.7)
    with torch.no_grad():
        mu, mask, mu_lengths = model.expand_prior(model.encode(*args), 1.0)
    assert torch.equal(lengths, mu_lengths)
    torch.testing.assert_close(mel, mu * mask.to(mu.dtype).unsqueeze(-1), rtol=0, atol=1e-6)
    assert not torch.equal(mel, model.synthesise(*args, n_steps=1, ode=True)[0])


def test_synth_config_takes_zero_steps_and_rejects_negative() -> None:
    assert GradTTSSynthConfig(n_steps=0).n_steps == 0
    with pytest.raises(ValueError, match="n_steps must be >= 0"):
        GradTTSSynthConfig(n_steps=-1)


def test_bad_inputs_raise() -> None:
    model = GradTTS(TINY, vocab_size=12)
    b = toy_batch()
    with pytest.raises(ValueError, match="fewer mel frames"):
        model.compute_losses(b["text"], b["text_lengths"], b["mel"], torch.tensor([21, 3, 9]))
    with pytest.raises(ValueError, match="emotion ids"):
        model.encode(b["text"], b["text_lengths"], emotion=torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="text ids"):
        model.encode(b["text"] + 20, b["text_lengths"])


@pytest.mark.parametrize("name", ["gradtts_debug.yaml", "gradtts_mini.yaml", "gradtts.yaml"])
def test_recipe_configs_load(name: str) -> None:
    cfg = load_config(CONF / name, GradTTSRecipeConfig).model
    assert cfg.n_mels == 80 and cfg.beta_min == 0.05 and cfg.beta_max == 20.0


def test_config_rejects_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  enc_layer: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key\(s\) model.enc_layer"):
        load_config(path, GradTTSRecipeConfig)


def test_aligned_prior_recovers_known_durations() -> None:
    """Mels made by repeating distinct token means must be aligned back to those durations."""
    model = GradTTS(TINY, vocab_size=12)
    mu = torch.tensor([[[0.0] * 16, [3.0] * 16, [-3.0] * 16, [6.0] * 16]])
    durations = torch.tensor([[2, 3, 1, 4]])
    mel = expand_by_path(mu, path_from_durations(durations, 12))
    enc = EncoderOutput(
        mu=mu, log_durations=torch.zeros(1, 4), mask=torch.ones(1, 4, dtype=torch.bool)
    )
    mu_y, found = model.aligned_prior(enc, mel, torch.tensor([10]))
    assert found.tolist() == durations.tolist()
    assert torch.equal(mu_y[:, :10], mel[:, :10])


def test_conv1d_score_ignores_padding_and_uses_conditioning() -> None:
    """Valid frames must not see what lies past an item's length; emotion changes the score."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, dec_kind="conv1d", dec_blocks=3, dec_dim=16)
    model = GradTTS(cfg, vocab_size=12, n_speakers=2, n_emotions=3)
    for p in model.decoder.parameters():  # zero-initialised parts would hide a dependence
        torch.nn.init.normal_(p, 0.0, 0.3)
    x, mu = torch.randn(2, 12, 16), torch.randn(2, 12, 16)
    mask = torch.arange(12)[None, :] < torch.tensor([12, 7])[:, None]
    t, spk, emo = torch.tensor([0.3, 0.6]), torch.tensor([0, 1]), torch.tensor([2, 0])
    score = model.score(x, mu, mask, t, spk, emo)
    assert score.shape == x.shape and not score[1, 7:].any()
    x2, mu2 = x.clone(), mu.clone()
    x2[1, 7:], mu2[1, 7:] = 50.0, -50.0
    assert torch.allclose(model.score(x2, mu2, mask, t, spk, emo)[1, :7], score[1, :7], atol=1e-5)
    other = model.score(x, mu, mask, t, spk, torch.tensor([1, 0]))
    assert not torch.allclose(other[0], score[0])


@pytest.mark.parametrize("score_param", ["eps", "residual"])
def test_noise_parametrisations_give_the_score_by_hand(score_param: str) -> None:
    """``eps``: s = −F/σ_t; ``residual``: s = −(x_t − μ) − F/σ_t (zero on padding); σ_t by hand."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(
        TINY, dec_kind="conv1d", dec_blocks=2, dec_dim=16, score_param=score_param
    )
    model = GradTTS(cfg, vocab_size=12, n_speakers=2, n_emotions=3)
    for p in model.decoder.parameters():
        torch.nn.init.normal_(p, 0.0, 0.3)
    x, mu = torch.randn(2, 12, 16), torch.randn(2, 12, 16)
    mask = torch.arange(12)[None, :] < torch.tensor([12, 7])[:, None]
    t, spk, emo = torch.tensor([0.5, 0.1]), torch.tensor([0, 1]), torch.tensor([2, 0])
    out = model.decoder(x, mu, mask, t, spk, emo)
    # Γ(0.5) = 0.05·0.5 + ½·19.95·0.25 = 2.51875; Γ(0.1) = 0.005 + ½·19.95·0.01 = 0.10475
    std = torch.tensor([1 - math.exp(-2.51875), 1 - math.exp(-0.10475)]).sqrt()
    expected = -out / std[:, None, None]
    if score_param == "residual":
        expected = expected - (x - mu) * mask[..., None]
    score = model.score(x, mu, mask, t, spk, emo)
    assert torch.allclose(score, expected, atol=1e-6)
    assert not score[1, 7:].any()


def test_residual_parametrisation_is_exact_for_the_gaussian_prior() -> None:
    """With F = 0 the residual score is −(x_t − μ): the score of X_t when X₀ ~ N(μ, I)."""
    cfg = dataclasses.replace(TINY, dec_kind="conv1d", score_param="residual")
    model = GradTTS(cfg, vocab_size=12)  # the output layer is zero-initialised: F = 0
    x, mu = torch.randn(1, 5, 16), torch.randn(1, 5, 16)
    score = model.score(x, mu, torch.ones(1, 5, dtype=torch.bool), torch.tensor([0.3]))
    assert torch.allclose(score, mu - x)
    with pytest.raises(ValueError, match="score_param"):
        dataclasses.replace(cfg, score_param="v")
