"""EASPM: emotion-aware step-wise preference model, CLEP-style dual encoder (docs/methods.md#easpo).

* Audio encoder: log-mel ``[B, frames, n_mels]`` at diffusion time ``t`` -> unit vector. Every
  transformer block uses adaLN driven by a timestep embedding, so one model scores intermediate
  noisy states ``x_t`` of the reverse chain as well as clean mels.
* Prompt encoder: a learned embedding of the emotion *label* followed by an MLP (the corpora carry
  labels, not free-text prompts; a label maps one-to-one to a prompt such as "a happy voice").
* Score: ``exp(logit_scale) · cos(audio, prompt)`` with a learnable temperature (CLIP init 1/0.07).
* Training data: pairs noised the SPO way, both members at the same random ``t`` with the same
  ``ε`` (``make_noisy_pairs``), so the score learns emotion differences rather than noise
  differences; ``contrastive_loss`` is the symmetric CLEP loss over a batch.
* Base negatives **[ours]**, optional: ``base_negative_loss`` ranks natural speech above the base
  Grad-TTS's own output for the same prompt (``easpm_training.BaseNegatives``).
* Prior mean for training **[ours]**: EASPM trains in stage 3, before any Grad-TTS exists, so the
  encoder's μ is not available. ``smoothed_prior_mean`` stands in for it: a centred moving average
  of a mel over ``mu_window`` frames, which is what Grad-TTS's μ approximates (the mean of the
  frames aligned to each character, a few frames long); ``easpm_training`` says whose mel.
  A trained scorer travels as one file (``save_easpm``/``load_easpm``) with its emotion labels,
  since ids mean nothing without them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from local_lib.atomic_io import torch_save_atomic
from local_lib.models.gradtts.layers import AdaLayerNorm, TimeMLP, TransformerBlock
from local_lib.models.gradtts.sde import NoiseSchedule


@dataclass(frozen=True)
class EASPMConfig:
    """Architecture; the emotion count comes from the data (``utt2emo``)."""

    n_mels: int = 80
    dim: int = 128
    heads: int = 2
    layers: int = 4
    ff_dim: int = 256
    kernel_size: int = 3
    dropout: float = 0.1
    embed_dim: int = 64
    init_temperature: float = 0.07

    def __post_init__(self) -> None:
        if self.dim % self.heads or self.dim % 2:
            raise ValueError(f"dim {self.dim} must be even and divisible by heads {self.heads}")
        if not 0 < self.init_temperature < 1:
            raise ValueError(f"init_temperature must be in (0, 1), got {self.init_temperature}")


MAX_LOGIT_SCALE = math.log(100.0)
"""CLIP's clamp: keeps the learnable temperature from collapsing the softmax."""


class EASPM(nn.Module):
    """Time-conditioned audio encoder + emotion-label encoder with a scaled cosine score."""

    def __init__(self, cfg: EASPMConfig, n_emotions: int) -> None:
        super().__init__()
        if n_emotions < 2:
            raise ValueError(f"need at least two emotions to contrast, got {n_emotions}")
        self.cfg, self.n_emotions = cfg, n_emotions
        self.inp = nn.Linear(cfg.n_mels, cfg.dim)
        self.time = TimeMLP(cfg.dim)
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg.dim, cfg.heads, cfg.ff_dim, cfg.kernel_size, cfg.dropout, cfg.dim)
            for _ in range(cfg.layers)
        )
        self.final_norm = AdaLayerNorm(cfg.dim, cfg.dim)
        self.audio_proj = nn.Linear(cfg.dim, cfg.embed_dim)
        self.prompt = nn.Sequential(
            nn.Embedding(n_emotions, cfg.embed_dim),
            nn.Linear(cfg.embed_dim, cfg.embed_dim),
            nn.GELU(),
            nn.Linear(cfg.embed_dim, cfg.embed_dim),
        )
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature)))

    def embed_audio(self, mel: Tensor, t: Tensor, mask: Tensor) -> Tensor:
        """``[B, frames, n_mels]`` at times ``[B]`` -> unit vectors ``[B, embed_dim]``."""
        if mel.dim() != 3 or mel.shape[-1] != self.cfg.n_mels:
            raise ValueError(f"mel must be [B, frames, {self.cfg.n_mels}], got {tuple(mel.shape)}")
        cond = self.time(t)
        fmask = mask.unsqueeze(-1).to(mel.dtype)
        h = self.inp(mel) * fmask
        for block in self.blocks:
            h = block(h, mask, cond)
        h = self.final_norm(h, cond) * fmask
        pooled = h.sum(1) / fmask.sum(1).clamp(min=1.0)
        return F.normalize(self.audio_proj(pooled), dim=-1)

    def embed_prompts(self, emotion: Tensor) -> Tensor:
        """Emotion ids ``[N]`` -> unit vectors ``[N, embed_dim]``."""
        if int(emotion.min()) < 0 or int(emotion.max()) >= self.n_emotions:
            raise ValueError(
                f"emotion ids must lie in [0, {self.n_emotions}), got {emotion.tolist()}"
            )
        return F.normalize(self.prompt(emotion), dim=-1)

    def scale(self) -> Tensor:
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()

    def score(self, mel: Tensor, t: Tensor, mask: Tensor, emotion: Tensor) -> Tensor:
        """Scaled cosine of each mel with its own target emotion -> ``[B]`` (the EASPO scorer)."""
        audio = self.embed_audio(mel, t, mask)
        return self.scale() * (audio * self.embed_prompts(emotion)).sum(-1)

    def logits(self, mel: Tensor, t: Tensor, mask: Tensor) -> Tensor:
        """Scaled cosine against every emotion prompt -> ``[B, n_emotions]``."""
        audio = self.embed_audio(mel, t, mask)
        prompts = self.embed_prompts(torch.arange(self.n_emotions, device=mel.device))
        return self.scale() * audio @ prompts.T

    def forward(self, mel: Tensor, t: Tensor, mask: Tensor) -> Tensor:
        """``logits``, through ``forward`` so DistributedDataParallel syncs the gradients."""
        return self.logits(mel, t, mask)


def contrastive_loss(
    model: nn.Module, mel: Tensor, t: Tensor, mask: Tensor, emotion: Tensor
) -> Tensor:
    """Symmetric CLEP loss: audio -> its emotion among all prompts, and each prompt present in the
    batch -> its audios (a uniform target over the items sharing that label, since labels repeat).
    ``model`` is an ``EASPM``, possibly wrapped for DDP.
    """
    return clep_loss(model(mel, t, mask), emotion)


def clep_loss(logits: Tensor, emotion: Tensor) -> Tensor:
    """``contrastive_loss`` from precomputed ``[B, n_emotions]`` logits."""
    audio_to_prompt = F.cross_entropy(logits, emotion)
    present = torch.unique(emotion)
    targets = (emotion[None, :] == present[:, None]).float()  # [P, B]
    targets = targets / targets.sum(1, keepdim=True)
    prompt_logits = logits.T[present]  # [P, B]
    prompt_to_audio = -(targets * prompt_logits.log_softmax(-1)).sum(-1).mean()
    return 0.5 * (audio_to_prompt + prompt_to_audio)


def base_negative_loss(score_natural: Tensor, score_base: Tensor) -> Tensor:
    """**[ours]** ``−log σ(s_natural − s_base)``, the mean over pairs: for the same text, speaker
    and target emotion, natural speech should score above the base Grad-TTS's own output, so that
    the scorer has room above what the base already does (``easpm_training.BaseNegatives``)."""
    if score_natural.shape != score_base.shape or score_natural.dim() != 1:
        raise ValueError(
            f"need two equal 1-D score vectors, got {tuple(score_natural.shape)} and "
            f"{tuple(score_base.shape)}"
        )
    return F.softplus(score_base - score_natural).mean()


def make_noisy_pairs(
    x0: Tensor,
    mu: Tensor,
    mask: Tensor,
    schedule: NoiseSchedule,
    t: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Noise both members of each pair to the same ``t`` with the same ``ε`` (SPO).

    ``x0`` and ``mu`` are ``[2, B, frames, n_mels]`` (pair member first, padded to a common
    length), ``mask`` ``[2, B, frames]``; ``mu`` is the frame-level Grad-TTS prior of each member
    (``GradTTS.aligned_prior``). ``t`` defaults to ``U(0, 1)`` per pair. Returns ``x_t`` with
    ``x0``'s shape and ``t`` ``[B]``.
    """
    if x0.dim() != 4 or x0.shape[0] != 2 or mu.shape != x0.shape or mask.shape != x0.shape[:3]:
        raise ValueError(
            f"need x0, mu [2, B, frames, n_mels] and mask [2, B, frames]; got "
            f"{tuple(x0.shape)}, {tuple(mu.shape)}, {tuple(mask.shape)}"
        )
    batch = x0.shape[1]
    if t is None:
        t = torch.rand(batch, generator=generator).to(x0.device)
    eps = torch.randn(x0.shape[1:], generator=generator, dtype=x0.dtype, device=x0.device)
    noisy = [schedule.sample_marginal(x0[i], mu[i], t, mask[i], noise=eps)[0] for i in range(2)]
    return torch.stack(noisy), t


@dataclass
class PreferenceAccuracy:
    """Accuracy of ``score(win) > score(lose)`` per t-bin; NaN where a bin is empty."""

    edges: Tensor  # [n_bins + 1]
    accuracy: Tensor  # [n_bins]
    counts: Tensor  # [n_bins]


def preference_accuracy_by_t(
    score_win: Tensor, score_lose: Tensor, t: Tensor, n_bins: int = 10
) -> PreferenceAccuracy:
    """Pairwise preference accuracy in ``n_bins`` equal bins of ``t ∈ [0, 1]`` (t = 1 in the last
    bin); ties count as wrong, since a scorer that cannot tell the pair apart has not preferred."""
    if not score_win.shape == score_lose.shape == t.shape or t.dim() != 1:
        raise ValueError("score_win, score_lose and t must be 1-D of equal length")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if len(t) and (float(t.min()) < 0 or float(t.max()) > 1):
        raise ValueError("t must lie in [0, 1]")
    edges = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64)
    bins = (t.double() * n_bins).long().clamp(max=n_bins - 1)
    correct = (score_win > score_lose).double()
    counts = torch.bincount(bins, minlength=n_bins)
    hits = torch.bincount(bins, weights=correct, minlength=n_bins)
    accuracy = torch.where(counts > 0, hits / counts.clamp(min=1), torch.full_like(hits, math.nan))
    return PreferenceAccuracy(edges=edges, accuracy=accuracy, counts=counts)


def smoothed_prior_mean(mel: Tensor, mask: Tensor, window: int) -> Tensor:
    """Stand-in for Grad-TTS's frame-level μ: a centred ``window``-frame moving average of each
    utterance's valid frames (``[B, frames, n_mels]``, zero on padding). ``window`` = 1 is the mel
    itself."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"mu_window must be a positive odd number, got {window}")
    fmask = mask.to(mel.dtype).unsqueeze(-1)
    kernel = torch.ones(1, 1, window, dtype=mel.dtype, device=mel.device)

    def box(x: Tensor) -> Tensor:  # sum over the window along frames, per mel bin
        b, f, m = x.shape
        flat = x.permute(0, 2, 1).reshape(b * m, 1, f)
        return F.conv1d(flat, kernel, padding=window // 2).reshape(b, m, f).permute(0, 2, 1)

    total = box(mel * fmask)
    count = box(fmask.expand_as(mel)).clamp(min=1.0)
    return total / count * fmask


EASPM_FORMAT = "easpm-v1"


@dataclass
class EASPMBundle:
    """A trained scorer with the names of its emotion ids and the μ stand-in it was trained on."""

    model: EASPM
    emotions: list[str]
    mu_window: int

    def emotion_id(self, emotion: str) -> int:
        if emotion not in self.emotions:
            raise ValueError(f"unknown emotion {emotion!r}; EASPM knows {self.emotions}")
        return self.emotions.index(emotion)


def save_easpm(bundle: EASPMBundle, path: str | Path) -> None:
    """Write atomically, so an interrupted stage 3 never leaves a model file a re-run trusts."""
    torch_save_atomic(
        {
            "format": EASPM_FORMAT,
            "config": dataclasses.asdict(bundle.model.cfg),
            "emotions": list(bundle.emotions),
            "mu_window": bundle.mu_window,
            "state_dict": bundle.model.state_dict(),
        },
        Path(path),
    )


def load_easpm(path: str | Path) -> EASPMBundle:
    """Read a scorer written by ``save_easpm``: frozen, in eval mode (it is only ever a judge)."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise ValueError(f"{path}: cannot read an EASPM model file: {err}") from err
    if not isinstance(data, dict) or data.get("format") != EASPM_FORMAT:
        raise ValueError(f"{path}: not an EASPM model file (expected format {EASPM_FORMAT})")
    model = EASPM(EASPMConfig(**data["config"]), len(data["emotions"]))
    model.load_state_dict(data["state_dict"])
    model.requires_grad_(False).eval()
    return EASPMBundle(model, list(data["emotions"]), int(data["mu_window"]))
