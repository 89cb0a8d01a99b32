"""Speech tokenizer for the codec LM, trained on the corpus: k-means over stacked log-mel frames.

``encode`` turns a waveform (or its log-mel) into one token per ``stack`` frames; ``decode``
looks the tokens' centroids up and refines them with a tiny convolutional mel decoder, then a
vocoder callable (Griffin-Lim by default elsewhere) makes audio. The interface — ``encode``,
``decode``, ``decode_wav``, ``token_rate``, ``vocab_size`` — is what an XCodec2 or S3 tokenizer
would also provide.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from local_lib.atomic_io import torch_save_atomic
from local_lib.data.features import LogMelConfig, log_mel

LOG = logging.getLogger(__name__)
KMEANS_MEL = "kmeans_mel"


class SpeechTokenizer(Protocol):
    """What the codec-LM stages need from any speech tokenizer (ours, XCodec2, S3, ...)."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def token_rate(self) -> float: ...

    def encode(self, audio_or_mel: np.ndarray | torch.Tensor) -> torch.Tensor: ...

    def decode_wav(
        self, tokens: torch.Tensor, vocoder: Callable[[np.ndarray], np.ndarray]
    ) -> np.ndarray: ...


def load_speech_tokenizer(path: str | Path) -> SpeechTokenizer:
    """Load a saved tokenizer by the ``kind`` it was saved with, so stages never name a class."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    kind = state.get("kind", KMEANS_MEL)
    if kind != KMEANS_MEL:
        raise ValueError(f"{path}: unknown speech tokenizer kind {kind!r} (known: {KMEANS_MEL})")
    return KMeansMelTokenizer.from_state(state)


@dataclass(frozen=True)
class SpeechTokenizerConfig:
    num_tokens: int = 256
    stack: int = 2  # log-mel frames per token
    kmeans_iters: int = 30
    decoder_channels: int = 64
    decoder_layers: int = 3
    decoder_kernel: int = 5
    decoder_steps: int = 300
    decoder_lr: float = 1e-3
    decoder_dilation: int = 1  # layer i of the mel decoder dilates by decoder_dilation ** i
    decoder_batch: int = 1  # utterances per decoder step
    decoder_crop: int = 0  # tokens per utterance crop in a decoder step (0: whole utterances)
    seed: int = 0
    max_utts: int | None = None  # train on an evenly spaced subset of the utterances (None: all)

    def __post_init__(self) -> None:
        for key in ("decoder_dilation", "decoder_batch"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.decoder_crop < 0:
            raise ValueError(
                f"decoder_crop must be >= 0 (0: whole utterances), got {self.decoder_crop}"
            )


class MelDecoder(nn.Module):
    """Residual 1-D conv net: smooths the piecewise-constant centroid mel using context.
    Dilation growing by layer widens that context at no extra cost per frame."""

    def __init__(
        self, n_mels: int, channels: int, layers: int, kernel: int, dilation: int = 1
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv1d(n_mels, channels, kernel, padding=kernel // 2)]
        for i in range(1, layers):
            d = dilation**i
            blocks += [
                nn.GELU(),
                nn.Conv1d(channels, channels, kernel, padding=d * (kernel // 2), dilation=d),
            ]
        blocks += [nn.GELU(), nn.Conv1d(channels, n_mels, 1)]
        self.net = nn.Sequential(*blocks)
        nn.init.zeros_(self.net[-1].weight)  # starts as the identity on the centroid mel
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:  # [B, T, n_mels]
        return mel + self.net(mel.transpose(1, 2)).transpose(1, 2)


class KMeansMelTokenizer:
    """Tokens = nearest k-means centroid of ``stack`` consecutive (normalised) log-mel frames."""

    def __init__(
        self,
        cfg: SpeechTokenizerConfig,
        mel_cfg: LogMelConfig,
        centroids: torch.Tensor,
        mean: torch.Tensor,
        std: torch.Tensor,
        decoder: MelDecoder,
    ) -> None:
        self.cfg, self.mel_cfg = cfg, mel_cfg
        self.centroids, self.mean, self.std, self.decoder = centroids, mean, std, decoder

    @property
    def vocab_size(self) -> int:
        return self.cfg.num_tokens

    @property
    def token_rate(self) -> float:
        """Tokens per second of audio."""
        return self.mel_cfg.sample_rate / (self.mel_cfg.hop_length * self.cfg.stack)

    @classmethod
    def train(
        cls, feats: Sequence[np.ndarray], cfg: SpeechTokenizerConfig, mel_cfg: LogMelConfig
    ) -> KMeansMelTokenizer:
        """Fit k-means on all stacked frames, then the mel decoder; deterministic for
        ``cfg.seed``."""
        gen = torch.Generator().manual_seed(cfg.seed)
        vectors = torch.cat(
            [_stack(torch.as_tensor(f, dtype=torch.float32), cfg.stack) for f in feats]
        )
        if vectors.shape[1] != cfg.stack * mel_cfg.n_mels:
            raise ValueError(
                f"features have {vectors.shape[1] // cfg.stack} mel bins, "
                f"config says {mel_cfg.n_mels}"
            )
        if len(vectors) < cfg.num_tokens:
            raise ValueError(f"{len(vectors)} stacked frames cannot train {cfg.num_tokens} tokens")
        mean, std = vectors.mean(0), vectors.std(0).clamp(min=1e-5)
        centroids = _kmeans((vectors - mean) / std, cfg.num_tokens, cfg.kmeans_iters, gen)
        with torch.random.fork_rng():  # seeded decoder init without touching the caller's RNG
            torch.manual_seed(cfg.seed)
            decoder = _mel_decoder(cfg, mel_cfg)
            tok = cls(cfg, mel_cfg, centroids, mean, std, decoder)
            tok._fit_decoder(feats, gen)
        return tok

    def _fit_decoder(self, feats: Sequence[np.ndarray], gen: torch.Generator) -> None:
        self.decoder.train()
        opt = torch.optim.Adam(self.decoder.parameters(), lr=self.cfg.decoder_lr)
        pairs = [
            (self.lookup(self.encode(f)), _trim(torch.as_tensor(f), self.cfg.stack)) for f in feats
        ]
        cfg = self.cfg
        for step in range(cfg.decoder_steps):
            coarse, target = _decoder_batch(
                pairs, cfg.decoder_batch, cfg.decoder_crop * cfg.stack, cfg.stack, gen
            )
            loss = (self.decoder(coarse) - target).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 100 == 0:
                LOG.info("mel decoder step %d/%d L1 %.4f", step, cfg.decoder_steps, loss.item())
        self.decoder.eval()

    def encode(self, audio_or_mel: np.ndarray | torch.Tensor) -> torch.Tensor:
        """1-D input is a waveform at ``mel_cfg.sample_rate``; 2-D is log-mel ``[frames, n_mels]``.
        Trailing frames that do not fill a stack are padded by repeating the last frame."""
        x = torch.as_tensor(audio_or_mel, dtype=torch.float32).cpu().numpy()
        mel = torch.as_tensor(log_mel(x, self.mel_cfg) if x.ndim == 1 else x, dtype=torch.float32)
        if mel.ndim != 2 or mel.shape[1] != self.mel_cfg.n_mels:
            raise ValueError(
                f"expected a waveform or log-mel [frames, {self.mel_cfg.n_mels}], "
                f"got {tuple(mel.shape)}"
            )
        vectors = (_stack(mel, self.cfg.stack) - self.mean) / self.std
        return torch.cdist(vectors, self.centroids).argmin(dim=1)

    def lookup(self, tokens: torch.Tensor) -> torch.Tensor:
        """Centroid log-mel of each token, unstacked: ``[N] -> [N * stack, n_mels]``."""
        tokens = torch.as_tensor(tokens, dtype=torch.long)
        if tokens.numel() and not 0 <= int(tokens.min()) <= int(tokens.max()) < self.vocab_size:
            raise ValueError(f"token outside [0, {self.vocab_size})")
        vectors = self.centroids[tokens] * self.std + self.mean
        return vectors.reshape(-1, self.mel_cfg.n_mels)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens -> log-mel ``[N * stack, n_mels]``."""
        return self.decoder(self.lookup(tokens)[None])[0]

    def decode_wav(
        self, tokens: torch.Tensor, vocoder: Callable[[np.ndarray], np.ndarray]
    ) -> np.ndarray:
        return vocoder(self.decode(tokens).numpy())

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "kind": KMEANS_MEL,
            "config": dataclasses.asdict(self.cfg),
            "mel_config": dataclasses.asdict(self.mel_cfg),
            "centroids": self.centroids, "mean": self.mean, "std": self.std,
            "decoder": self.decoder.state_dict(),
        }  # fmt: skip
        torch_save_atomic(state, path)

    @classmethod
    def load(cls, path: str | Path) -> KMeansMelTokenizer:
        return cls.from_state(torch.load(path, map_location="cpu", weights_only=True))

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> KMeansMelTokenizer:
        cfg = SpeechTokenizerConfig(**state["config"])
        mel_cfg = LogMelConfig(**state["mel_config"])
        decoder = _mel_decoder(cfg, mel_cfg)
        decoder.load_state_dict(state["decoder"])
        decoder.eval()
        return cls(cfg, mel_cfg, state["centroids"], state["mean"], state["std"], decoder)


def _mel_decoder(cfg: SpeechTokenizerConfig, mel_cfg: LogMelConfig) -> MelDecoder:
    return MelDecoder(
        mel_cfg.n_mels,
        cfg.decoder_channels,
        cfg.decoder_layers,
        cfg.decoder_kernel,
        cfg.decoder_dilation,
    )


def _decoder_batch(
    pairs: Sequence[tuple[torch.Tensor, torch.Tensor]],
    batch: int,
    crop_frames: int,
    stack: int,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` random utterances, each cut to one random crop of the same length (whole
    stacks): ``crop_frames``, or the shortest picked utterance when that is shorter (or when
    ``crop_frames`` is 0)."""
    picked = [pairs[int(i)] for i in torch.randint(len(pairs), (batch,), generator=gen)]
    shortest = min(len(coarse) for coarse, _ in picked)
    length = min(crop_frames, shortest) if crop_frames else shortest
    coarse_rows, target_rows = [], []
    for coarse, target in picked:
        starts = (len(coarse) - length) // stack + 1
        start = int(torch.randint(starts, (1,), generator=gen)) * stack if starts > 1 else 0
        coarse_rows.append(coarse[start : start + length])
        target_rows.append(target[start : start + length])
    return torch.stack(coarse_rows), torch.stack(target_rows)


def _trim(mel: torch.Tensor, stack: int) -> torch.Tensor:
    """Pad to a whole number of stacks by repeating the last frame (what encode sees)."""
    extra = (-len(mel)) % stack
    return torch.cat([mel, mel[-1:].expand(extra, -1)]) if extra else mel


def _stack(mel: torch.Tensor, stack: int) -> torch.Tensor:
    if len(mel) == 0:
        raise ValueError("empty feature matrix")
    return _trim(mel, stack).reshape(-1, stack * mel.shape[1])


def _kmeans(x: torch.Tensor, k: int, iters: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding then Lloyd steps; an emptied cluster takes the worst-fit point."""
    centroids = x[torch.randint(len(x), (1,), generator=gen)]
    dist = torch.cdist(x, centroids).squeeze(1) ** 2
    for _ in range(1, k):
        if dist.sum() > 0:
            pick = torch.multinomial(dist / dist.sum(), 1, generator=gen)
        else:  # fewer distinct points than k: duplicates are harmless
            pick = torch.randint(len(x), (1,), generator=gen)
        centroids = torch.cat([centroids, x[pick]])
        dist = torch.minimum(dist, ((x - x[pick]) ** 2).sum(1))
    for it in range(iters):
        d = torch.cdist(x, centroids)
        assign = d.argmin(1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)
        new = sums / counts.clamp(min=1)[:, None]
        empty = counts == 0
        if empty.any():
            worst = d.min(1).values.topk(int(empty.sum())).indices
            new[empty] = x[worst]
        if torch.equal(new, centroids):
            break
        centroids = new
        LOG.debug("k-means iteration %d", it)
    return centroids
