"""Grad-TTS: text encoder + duration predictor + MAS alignment + U-Net score model.

Mels are ``[B, frames, n_mels]`` log-mels in the ``local_lib.data.features.LogMelConfig``
convention (natural log of the clamped magnitude mel, 80 bins by default), unnormalised, as the
original Grad-TTS trains on log-mels directly. Text is integer ids with 0 as padding.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from local_lib.align.torch_api import monotonic_alignment_search_torch
from local_lib.models.gradtts.alignment import (
    expand_by_path,
    mel_log_likelihood,
    path_from_durations,
)
from local_lib.models.gradtts.config import GradTTSConfig
from local_lib.models.gradtts.convnet import ScoreConvNet
from local_lib.models.gradtts.layers import sequence_mask
from local_lib.models.gradtts.sampler import prior_sample, reverse_diffusion
from local_lib.models.gradtts.sde import NoiseSchedule
from local_lib.models.gradtts.text_encoder import EncoderOutput, TextEncoder
from local_lib.models.gradtts.unet import ScoreUNet

T_EPS = 1e-5
"""Training times are drawn from ``[T_EPS, 1 − T_EPS]``: at t = 0 the marginal variance is 0."""


def _random_segments(
    tensors: list[Tensor], lengths: Tensor, frames: int, generator: torch.Generator | None
) -> tuple[list[Tensor], Tensor]:
    """Crop ``frames`` frames at a random valid offset per item (Grad-TTS's ``out_size``)."""
    max_start = (lengths - frames).clamp(min=0)
    start = (torch.rand(lengths.shape, generator=generator) * (max_start + 1).float()).long()
    start = torch.minimum(start.to(lengths.device), max_start)
    idx = start[:, None] + torch.arange(frames, device=lengths.device)[None, :]
    idx = idx.clamp(max=tensors[0].shape[1] - 1)
    out = [x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1])) for x in tensors]
    return out, (lengths - start).clamp(max=frames)


class GradTTS(nn.Module):
    """Grad-TTS with speaker and emotion embeddings in both the encoder and the decoder.

    Vocabulary, speaker and emotion counts come from the data; ``speaker``/``emotion`` default to
    id 0 for single-speaker or emotion-free corpora.
    """

    def __init__(
        self, cfg: GradTTSConfig, vocab_size: int, n_speakers: int = 1, n_emotions: int = 1
    ) -> None:
        super().__init__()
        if vocab_size < 2 or n_speakers < 1 or n_emotions < 1:
            raise ValueError(
                f"need vocab_size >= 2, n_speakers >= 1, n_emotions >= 1; got {vocab_size}, "
                f"{n_speakers}, {n_emotions}"
            )
        self.cfg = cfg
        self.vocab_size, self.n_speakers, self.n_emotions = vocab_size, n_speakers, n_emotions
        self.encoder = TextEncoder(cfg, vocab_size, n_speakers, n_emotions)
        decoder = ScoreUNet if cfg.dec_kind == "unet" else ScoreConvNet
        self.decoder: nn.Module = decoder(cfg, n_speakers, n_emotions)
        self.schedule = NoiseSchedule(cfg.beta_min, cfg.beta_max)

    def _ids(
        self, ids: Tensor | None, batch: int, limit: int, name: str, device: torch.device
    ) -> Tensor:
        if ids is None:
            return torch.zeros(batch, dtype=torch.long, device=device)
        if ids.shape != (batch,) or int(ids.min()) < 0 or int(ids.max()) >= limit:
            raise ValueError(f"{name} ids must be [{batch}] in [0, {limit}), got {ids.tolist()}")
        return ids

    def encode(
        self,
        text: Tensor,
        text_lengths: Tensor,
        speaker: Tensor | None = None,
        emotion: Tensor | None = None,
    ) -> EncoderOutput:
        """Per-token μ ``[B, T_text, n_mels]`` and log-durations ``[B, T_text]``."""
        if text.dim() != 2 or text_lengths.shape != (text.shape[0],):
            raise ValueError(
                f"text must be [B, T] with [B] lengths, got {tuple(text.shape)}, "
                f"{tuple(text_lengths.shape)}"
            )
        if int(text_lengths.min()) < 1 or int(text_lengths.max()) > text.shape[1]:
            raise ValueError(
                f"text lengths must lie in [1, {text.shape[1]}], got {text_lengths.tolist()}"
            )
        if int(text.max()) >= self.vocab_size or int(text.min()) < 0:
            raise ValueError(
                f"text ids must lie in [0, {self.vocab_size}), got max {int(text.max())}"
            )
        b, dev = text.shape[0], text.device
        spk = self._ids(speaker, b, self.n_speakers, "speaker", dev)
        emo = self._ids(emotion, b, self.n_emotions, "emotion", dev)
        return self.encoder(text, text_lengths, spk, emo)

    def score(
        self,
        x_t: Tensor,
        mu: Tensor,
        mask: Tensor,
        t: Tensor,
        speaker: Tensor | None = None,
        emotion: Tensor | None = None,
    ) -> Tensor:
        """Score estimate ``s_θ(x_t, μ, t)`` on frame-level μ; ``t`` is ``[B]``.

        The decoder's output F is read per ``cfg.score_param``: the score itself (the paper), a
        noise estimate ε̂ with ``s = −ε̂/σ_t`` (``eps``), or (``residual``) the correction to
        ``−(x_t − μ)``, the exact score when ``X₀ ~ N(μ, I)`` (Grad-TTS's prior: that law is
        stationary under the forward SDE). With ``residual`` an untrained decoder already gives
        a stable reverse chain, and at large t, where ``X_t`` hardly depends on ``X₀``, the
        target of F is near zero instead of a near-identity map the network must learn exactly:
        there a slope error in the score is amplified by about ``1 + hβ_t/2`` per reverse step.
        """
        b, dev = x_t.shape[0], x_t.device
        spk = self._ids(speaker, b, self.n_speakers, "speaker", dev)
        emo = self._ids(emotion, b, self.n_emotions, "emotion", dev)
        out = self.decoder(x_t, mu, mask, t, spk, emo)
        if self.cfg.score_param == "score":
            return out
        score = -out / self.schedule.std(t).to(out).view(-1, 1, 1)
        if self.cfg.score_param == "residual":
            score = score - (x_t - mu) * mask.to(out.dtype).unsqueeze(-1)
        return score

    def aligned_prior(
        self, enc: EncoderOutput, mel: Tensor, mel_lengths: Tensor
    ) -> tuple[Tensor, Tensor]:
        """MAS under ``N(mel; μ, I)``: frame-level μ (gradient flows into μ) and token durations."""
        text_lengths = enc.mask.sum(1)
        with torch.no_grad():
            ll = mel_log_likelihood(enc.mu, mel)
            path, durations = monotonic_alignment_search_torch(ll, text_lengths, mel_lengths)
        return expand_by_path(enc.mu, path), durations

    def compute_losses(
        self,
        text: Tensor,
        text_lengths: Tensor,
        mel: Tensor,
        mel_lengths: Tensor,
        speaker: Tensor | None = None,
        emotion: Tensor | None = None,
        generator: torch.Generator | None = None,
        train_encoder: bool = True,
    ) -> dict[str, Tensor]:
        """Prior, duration and diffusion losses and their sum under ``loss``. With
        ``train_encoder=False`` the encoder runs without autograd: only the diffusion loss has a
        gradient, and only into the decoder (stage 4's decoder phase; the encoder's backward is
        skipped, not just zeroed)."""
        n_mels = self.cfg.n_mels
        if mel.dim() != 3 or mel.shape[-1] != n_mels or mel.shape[0] != text.shape[0]:
            raise ValueError(
                f"mel must be [{text.shape[0]}, frames, {n_mels}], got {tuple(mel.shape)}"
            )
        short = (mel_lengths < text_lengths).nonzero().flatten().tolist()
        if short:
            raise ValueError(
                f"batch items {short} have fewer mel frames than text tokens; "
                "MAS needs at least one frame per token"
            )
        with torch.set_grad_enabled(train_encoder and torch.is_grad_enabled()):
            enc = self.encode(text, text_lengths, speaker, emotion)
            mu_y, durations = self.aligned_prior(enc, mel, mel_lengths)
        mel_mask = sequence_mask(mel_lengths, mel.shape[1])
        fmask = mel_mask.unsqueeze(-1).to(mel.dtype)
        n_valid = mel_mask.sum() * n_mels

        tmask = enc.mask.to(mel.dtype)
        target = torch.log(durations.to(mel.dtype) + 1e-8) * tmask
        duration_loss = ((enc.log_durations - target) ** 2 * tmask).sum() / tmask.sum()

        prior_loss = (0.5 * ((mel - mu_y) ** 2 + math.log(2 * math.pi)) * fmask).sum() / n_valid

        x0, mu_seg, seg_lengths = mel, mu_y, mel_lengths
        seg = self.cfg.segment_frames
        if seg is not None and mel.shape[1] > seg:
            (x0, mu_seg), seg_lengths = _random_segments([mel, mu_y], mel_lengths, seg, generator)
        seg_mask = sequence_mask(seg_lengths, x0.shape[1])
        t = torch.rand(x0.shape[0], generator=generator).to(mel.device).clamp(T_EPS, 1 - T_EPS)
        x_t, noise = self.schedule.sample_marginal(x0, mu_seg, t, seg_mask, generator=generator)
        _, std = self.schedule.marginal(x0, mu_seg, t)
        score = self.score(x_t, mu_seg, seg_mask, t, speaker, emotion)
        seg_fmask = seg_mask.unsqueeze(-1).to(mel.dtype)
        diffusion_loss = (((score * std + noise) ** 2) * seg_fmask).sum() / (
            seg_mask.sum() * n_mels
        )
        return {
            "prior": prior_loss,
            "duration": duration_loss,
            "diffusion": diffusion_loss,
            "loss": prior_loss + duration_loss + diffusion_loss,
        }

    def forward(
        self,
        text: Tensor,
        text_lengths: Tensor,
        mel: Tensor,
        mel_lengths: Tensor,
        speaker: Tensor | None = None,
        emotion: Tensor | None = None,
        generator: torch.Generator | None = None,
        train_encoder: bool = True,
    ) -> dict[str, Tensor]:
        """The training losses (``compute_losses``); through ``forward`` so DDP syncs gradients."""
        return self.compute_losses(
            text, text_lengths, mel, mel_lengths, speaker, emotion, generator, train_encoder
        )

    def expand_prior(
        self, enc: EncoderOutput, length_scale: float = 1.0
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Predicted durations -> frame-level μ ``[B, frames, n_mels]``, mask and frame counts."""
        durations = torch.ceil(torch.exp(enc.log_durations) * length_scale) * enc.mask
        durations = durations.long().clamp(min=0)
        durations = torch.where(enc.mask, durations.clamp(min=1), durations)
        mel_lengths = durations.sum(1)
        path = path_from_durations(durations, int(mel_lengths.max()))
        mel_mask = sequence_mask(mel_lengths, path.shape[-1])
        return expand_by_path(enc.mu, path), mel_mask, mel_lengths

    @torch.no_grad()
    def synthesise(
        self,
        text: Tensor,
        text_lengths: Tensor,
        speaker: Tensor | None = None,
        emotion: Tensor | None = None,
        n_steps: int = 10,
        temperature: float = 1.0,
        ode: bool = False,
        length_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Log-mel ``[B, frames, n_mels]`` (zero past each length) and the frame counts.

        ``n_steps=0`` returns the prior mean μ itself, no noise and no decoder: the reference
        point that says what the decoder adds."""
        enc = self.encode(text, text_lengths, speaker, emotion)
        mu_y, mel_mask, mel_lengths = self.expand_prior(enc, length_scale)
        if n_steps == 0:
            return mu_y * mel_mask.to(mu_y.dtype).unsqueeze(-1), mel_lengths
        x = prior_sample(mu_y, mel_mask, temperature, generator)

        def score_fn(x_t: Tensor, t: Tensor) -> Tensor:
            return self.score(x_t, mu_y, mel_mask, t, speaker, emotion)

        mel = reverse_diffusion(score_fn, x, mu_y, mel_mask, n_steps, self.schedule, ode, generator)
        return mel, mel_lengths
