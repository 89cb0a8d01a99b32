"""Stage-3 training of EASPM on a corpus with emotion labels, and its preference accuracy vs t.

Batches are built from *groups*: the utterances of one speaker reading one sentence (ESD reads
every sentence in each of the five emotions). A group shares one diffusion time ``t`` and one
noise ``ε`` (the SPO pair recipe, extended from pairs to groups), so within a group the only
difference the scorer can use is the emotional rendering, not the noise or the words.

Prior mean μ **[ours]**: EASPM trains before any Grad-TTS exists, so the encoder's μ stands in
as a smoothed mel (``smoothed_prior_mean``). ``mu_source: neutral`` (default) takes it from the
group's *neutral* rendering, linearly stretched to each member's length: μ then carries the words
and the voice but no emotion, as the noise grows the emotion is visible only through the
``e^{−Γ/2}X₀`` part, and the scorer has to read it there, which is the part EASPO's candidates
differ in. ``mu_source: self`` smooths each utterance's own mel; its μ carries the emotion, so
even pure noise around it is easy to rank (preference accuracy stays ~1 at every t on mini_esd)
and the scorer learns little that separates EASPO's candidates.

Base negatives **[ours]** (``base_negatives`` in the config, ``BaseNegatives``): trained on
natural audio alone, EASPM labels every finished output of the base Grad-TTS with its target
emotion, so it has no room to prefer anything above what the base already does. With this
section the scorer also ranks natural speech above the base's own output for the same text,
speaker and target emotion (``base_negative_loss``, weighted beside the CLEP loss). The base
exists only after stage 4, so such an EASPM trains in stage 5, before the EASPO variant that uses
it (egs/TEMPLATE/stages_gradtts.sh).

Preference accuracy (the question EASPO asks of the scorer): for two utterances of the same
group in emotions A ≠ B, noised to the same ``t`` with the same ``ε``, does the scorer rank the
A-utterance above the B-utterance for prompt A? Measured per ``t`` on a grid of bin centres.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import kaldiio
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from local_lib.atomic_io import atomic_path, write_text_atomic
from local_lib.data.kaldi_dir import load_data_dir, read_kv
from local_lib.models.easpm import (
    EASPM,
    EASPMConfig,
    PreferenceAccuracy,
    base_negative_loss,
    clep_loss,
    make_noisy_pairs,
    preference_accuracy_by_t,
    smoothed_prior_mean,
)
from local_lib.models.gradtts.bundle import GradTTSBundle
from local_lib.models.gradtts.layers import sequence_mask
from local_lib.models.gradtts.sde import NoiseSchedule
from local_lib.train.config import TrainSection

log = logging.getLogger(__name__)


MU_SOURCES = ("neutral", "self")


@dataclass(frozen=True)
class EASPMTrainSection(TrainSection):
    """The ``train`` section of conf/easpm*.yaml."""

    num_steps: int = 1500
    groups_per_batch: int = 8
    crop_frames: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    mu_window: int = 9
    mu_source: str = "neutral"
    neutral_emotion: str = "Neutral"
    log_every: int = 50
    save_every: int = 250
    max_utts: int | None = None
    eval_bins: int = 10
    eval_pairs: int = 400

    def __post_init__(self) -> None:
        super().__post_init__()
        positive = ("groups_per_batch", "crop_frames", "eval_bins", "eval_pairs")
        bad = [name for name in positive if getattr(self, name) < 1]
        if bad or self.warmup_steps < 0:
            raise ValueError(f"{bad or 'warmup_steps'} must be positive")
        if self.mu_window < 1 or self.mu_window % 2 == 0:
            raise ValueError(f"mu_window must be a positive odd number, got {self.mu_window}")
        if self.mu_source not in MU_SOURCES:
            raise ValueError(f"mu_source must be one of {MU_SOURCES}, got {self.mu_source!r}")


@dataclass(frozen=True)
class BaseNegatives:
    """**[ours]** The ``base_negatives`` section of conf/easpm*.yaml: pairs of a natural train
    utterance (preferred) and the base Grad-TTS's output for its text, speaker and emotion
    (less preferred), beside the CLEP batches. The base speaks ``pool_size`` evenly spaced train
    prompts once, with stage 6's sampler settings by default."""

    weight: float = 1.0  # of base_negative_loss beside the CLEP loss
    pairs_per_batch: int = 8
    pool_size: int = 200
    n_steps: int = 10
    temperature: float = 1.5
    ode: bool = True
    length_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.pairs_per_batch < 1 or self.pool_size < 1 or self.n_steps < 1:
            raise ValueError(
                f"pairs_per_batch, pool_size and n_steps must be >= 1, got {self.pairs_per_batch}, "
                f"{self.pool_size}, {self.n_steps}"
            )
        if self.weight <= 0 or self.temperature <= 0 or self.length_scale <= 0:
            raise ValueError("weight, temperature and length_scale must be positive")


@dataclass(frozen=True)
class EASPMRecipeConfig:
    """conf/easpm*.yaml; ``base_negatives`` (**[ours]**) needs the base Grad-TTS."""

    model: EASPMConfig = EASPMConfig()
    train: EASPMTrainSection = EASPMTrainSection()
    base_negatives: BaseNegatives | None = None


@dataclass
class EmotionMels:
    """Log-mels ``[frames, n_mels]`` with emotion ids, the groups of the same sentence and the
    prior mean μ standing in for Grad-TTS's (``attach_prior_means``; empty until then)."""

    utts: list[str]
    mels: list[Tensor]
    emotions: list[int]
    labels: list[str]
    groups: list[list[int]]
    mus: list[Tensor] = dataclasses.field(default_factory=list)


def stretch_frames(x: Tensor, frames: int) -> Tensor:
    """``[n, n_mels]`` -> ``[frames, n_mels]`` by linear interpolation along time."""
    if x.shape[0] == frames:
        return x
    out = F.interpolate(x.T[None], size=frames, mode="linear", align_corners=True)
    return out[0].T


def attach_prior_means(data: EmotionMels, source: str, window: int, neutral: str) -> None:
    """Fill ``data.mus``; with ``source="neutral"`` a group without a ``neutral`` member is an
    error naming one of its utterances."""
    def smooth(mel: Tensor) -> Tensor:
        mask = torch.ones(1, mel.shape[0], dtype=torch.bool)
        return smoothed_prior_mean(mel[None], mask, window)[0]

    if source == "self":
        data.mus = [smooth(m) for m in data.mels]
        return
    if neutral not in data.labels:
        raise ValueError(f"mu_source neutral: no {neutral!r} among the emotions {data.labels}")
    neutral_id = data.labels.index(neutral)
    mus: list[Tensor | None] = [None] * len(data.mels)
    for group in data.groups:
        found = [i for i in group if data.emotions[i] == neutral_id]
        if not found:
            raise ValueError(
                f"mu_source neutral: {data.utts[group[0]]} has no {neutral} rendering of its "
                "sentence by its speaker (use mu_source: self for such a corpus)"
            )
        base = smooth(data.mels[found[0]])
        for i in group:
            mus[i] = stretch_frames(base, data.mels[i].shape[0])
    data.mus = [m for m in mus if m is not None]


def _group_indices(keys: list[tuple[str, str]]) -> list[list[int]]:
    by_key: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(keys):
        by_key.setdefault(key, []).append(i)
    return [by_key[k] for k in sorted(by_key)]


def load_emotion_mels(
    data_dir: Path,
    feats_scp: Path,
    labels: list[str] | None = None,
    max_utts: int | None = None,
) -> EmotionMels:
    """Features of every utterance of ``data_dir`` with its ``utt2emo`` label.

    ``labels`` fixes the emotion order (the training set's, for a dev set); by default it is the
    sorted label set. ``max_utts`` keeps evenly spaced whole groups up to about that many
    utterances, so a debug run still has every emotion of a sentence together.
    """
    data = load_data_dir(Path(data_dir))
    utt2emo = data.extras.get("utt2emo")
    if utt2emo is None:
        raise ValueError(f"{data_dir}: EASPM needs utt2emo (the emotion of every utterance)")
    feats = read_kv(Path(feats_scp))
    utts = data.utts
    for utt in utts:
        if utt not in utt2emo:
            raise ValueError(f"{data_dir}/utt2emo: {utt}: no emotion label")
        if utt not in feats:
            raise ValueError(f"{feats_scp}: {utt}: no features (run stage 2 for this set)")
    labels = sorted(set(utt2emo[u] for u in utts)) if labels is None else list(labels)
    unknown = sorted(set(utt2emo[u] for u in utts) - set(labels))
    if unknown:
        raise ValueError(f"{data_dir}/utt2emo: emotions {unknown} not among {labels}")
    groups = _group_indices([(data.utt2spk[u], data.text[u]) for u in utts])
    if max_utts is not None and max_utts < len(utts):
        per_group = len(utts) / len(groups)
        n_keep = max(1, min(len(groups), round(max_utts / per_group)))
        keep = np.linspace(0, len(groups) - 1, n_keep).round().astype(int)
        utts = [utts[i] for g in keep for i in groups[g]]
        groups = _group_indices([(data.utt2spk[u], data.text[u]) for u in utts])
    mels = []
    for n, utt in enumerate(utts, start=1):
        mels.append(torch.tensor(np.asarray(kaldiio.load_mat(feats[utt])), dtype=torch.float32))
        if n % 1000 == 0:
            log.info("read features of %d/%d utterances from %s", n, len(utts), feats_scp)
    return EmotionMels(
        utts=utts,
        mels=mels,
        emotions=[labels.index(utt2emo[u]) for u in utts],
        labels=labels,
        groups=groups,
    )


def pad_mels(mels: list[Tensor]) -> tuple[Tensor, Tensor]:
    """``[frames_i, n_mels]`` list -> zero-padded ``[N, frames, n_mels]`` and its frame mask."""
    lengths = torch.tensor([m.shape[0] for m in mels])
    out = torch.zeros(len(mels), int(lengths.max()), mels[0].shape[1])
    for i, m in enumerate(mels):
        out[i, : m.shape[0]] = m
    return out, sequence_mask(lengths, out.shape[1])


@dataclass
class NoisyBatch:
    """Noised mels of whole groups: ``x_t`` ``[N, frames, n_mels]``, mask, ``t`` and emotion
    ``[N]``."""

    x_t: Tensor
    mask: Tensor
    t: Tensor
    emotion: Tensor


def noisy_group_batch(
    data: EmotionMels,
    group_ids: list[int],
    crop_frames: int,
    schedule: NoiseSchedule,
    generator: torch.Generator,
) -> NoisyBatch:
    """Every member of the chosen groups, cropped to at most ``crop_frames`` at a random start
    (its μ with it), noised with one ``t ~ U(0, 1)`` and one ``ε`` per group."""
    items = [i for g in group_ids for i in data.groups[g]]
    group_of = torch.tensor([n for n, g in enumerate(group_ids) for _ in data.groups[g]])
    crops, mu_crops = [], []
    for i in items:
        room = max(1, data.mels[i].shape[0] - crop_frames + 1)
        start = int(torch.randint(0, room, (1,), generator=generator))
        crops.append(data.mels[i][start : start + crop_frames])
        mu_crops.append(data.mus[i][start : start + crop_frames])
    x0, mask = pad_mels(crops)
    mu, _ = pad_mels(mu_crops)
    t = torch.rand(len(group_ids), generator=generator)[group_of]
    eps = torch.randn((len(group_ids), *x0.shape[1:]), generator=generator)[group_of]
    x_t, _ = schedule.sample_marginal(x0, mu, t, mask, noise=eps)
    emotion = torch.tensor([data.emotions[i] for i in items])
    return NoisyBatch(x_t=x_t, mask=mask, t=t, emotion=emotion)


@dataclass
class BasePairs:
    """**[ours]** Natural mels and the base's output for the same prompts, each with the base's
    frame-level μ (stretched to the natural length), so that both members of a pair noise around
    the same prior and differ in ``x_0`` alone, as EASPO's candidates do."""

    utts: list[str]
    natural: list[Tensor]
    base: list[Tensor]
    natural_mu: list[Tensor]
    base_mu: list[Tensor]
    emotions: list[int]


@torch.no_grad()
def base_output(
    bundle: GradTTSBundle, text: str, speaker: str, emotion: str, cfg: BaseNegatives, seed: int
) -> tuple[Tensor, Tensor]:
    """The base's finished log-mel ``[frames, n_mels]`` of one prompt and its μ, frame for frame."""
    model = bundle.model.eval()
    ids, lengths = bundle.encode_texts([text])
    spk = torch.tensor([bundle.speaker_id(speaker)])
    emo = torch.tensor([bundle.emotion_id(emotion)])
    mel, frames = model.synthesise(
        ids, lengths, spk, emo, n_steps=cfg.n_steps, temperature=cfg.temperature, ode=cfg.ode,
        length_scale=cfg.length_scale, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    mu, _, _ = model.expand_prior(model.encode(ids, lengths, spk, emo), cfg.length_scale)
    n = int(frames[0])
    return mel[0, :n], mu[0, :n]


def build_base_pairs(
    data: EmotionMels,
    texts: dict[str, str],
    speakers: dict[str, str],
    bundle: GradTTSBundle,
    cfg: BaseNegatives,
    seed: int,
) -> BasePairs:
    """The base speaks ``cfg.pool_size`` evenly spaced utterances of ``data`` (text and speaker
    from the data dir), each with a generator seeded by ``seed`` and its index."""
    picks = np.unique(np.linspace(0, len(data.utts) - 1, min(cfg.pool_size, len(data.utts))))
    pairs = BasePairs([], [], [], [], [], [])
    for i in picks.round().astype(int).tolist():
        utt = data.utts[i]
        try:
            mel, mu = base_output(
                bundle, texts[utt], speakers[utt], data.labels[data.emotions[i]], cfg,
                seed * 1_000_003 + i,
            )  # fmt: skip
        except (KeyError, ValueError) as err:
            raise ValueError(f"base_negatives: {utt}: the base cannot speak it: {err}") from err
        pairs.utts.append(utt)
        pairs.natural.append(data.mels[i])
        pairs.base.append(mel)
        pairs.natural_mu.append(stretch_frames(mu, data.mels[i].shape[0]))
        pairs.base_mu.append(mu)
        pairs.emotions.append(data.emotions[i])
    return pairs


def noisy_base_pairs(
    pairs: BasePairs,
    ids: list[int],
    crop_frames: int,
    schedule: NoiseSchedule,
    generator: torch.Generator,
) -> NoisyBatch:
    """The chosen pairs as one batch, the naturals first, then the base outputs in the same order:
    each pair cropped at the same relative position (the same words), noised to one ``t ~ U(0, 1)``
    with one ``ε`` (``make_noisy_pairs``)."""
    members: list[list[Tensor]] = [[], [], [], []]  # natural, base, and their μ
    for i in ids:
        where = float(torch.rand(1, generator=generator))
        for mels, mus, out, out_mu in (
            (pairs.natural, pairs.natural_mu, members[0], members[2]),
            (pairs.base, pairs.base_mu, members[1], members[3]),
        ):
            start = round(where * max(0, mels[i].shape[0] - crop_frames))
            out.append(mels[i][start : start + crop_frames])
            out_mu.append(mus[i][start : start + crop_frames])
    x0, mask = pad_mels(members[0] + members[1])
    mu, _ = pad_mels(members[2] + members[3])
    n = len(ids)
    x_t, t = make_noisy_pairs(
        x0.view(2, n, *x0.shape[1:]), mu.view(2, n, *mu.shape[1:]), mask.view(2, n, -1),
        schedule, generator=generator,
    )  # fmt: skip
    emotion = torch.tensor([pairs.emotions[i] for i in ids]).repeat(2)
    return NoisyBatch(x_t=x_t.flatten(0, 1), mask=mask, t=t.repeat(2), emotion=emotion)


@dataclass
class EASPMBatch:
    """One step's items in one padded batch, so one forward (and one DDP sync) sees them all:
    whole groups for the CLEP loss, then ``n_pairs`` base-negative pairs **[ours]** (naturals,
    then base outputs; none without ``base_negatives``)."""

    noisy: NoisyBatch
    n_pairs: int = 0


def join_batches(first: NoisyBatch, second: NoisyBatch) -> NoisyBatch:
    """``first``'s items then ``second``'s, padded to the longer of the two."""
    frames = max(first.x_t.shape[1], second.x_t.shape[1])

    def pad(x: Tensor) -> Tensor:  # along frames, dim 1 of x_t and of the mask
        widths = [0, 0] * (x.dim() - 2) + [0, frames - x.shape[1]]
        return F.pad(x, widths)

    return NoisyBatch(
        x_t=torch.cat([pad(first.x_t), pad(second.x_t)]),
        mask=torch.cat([pad(first.mask), pad(second.mask)]),
        t=torch.cat([first.t, second.t]),
        emotion=torch.cat([first.emotion, second.emotion]),
    )


def easpm_loss(
    logits: Tensor, emotion: Tensor, n_pairs: int, weight: float
) -> tuple[Tensor, dict[str, float]]:
    """The CLEP loss of the group items, plus ``weight`` × ``base_negative_loss`` of the last
    ``2 · n_pairs`` items (naturals, then base outputs) scored for their target emotion; and the
    logging scalars: ``acc`` (the group items' top emotion is theirs) and, with pairs,
    ``loss_clep``, ``loss_base`` and ``base_pair_acc`` (natural above base)."""
    n_groups = len(emotion) - 2 * n_pairs
    if n_groups < 1 or n_pairs < 0:
        raise ValueError(f"{len(emotion)} items cannot hold {n_pairs} pairs and a group")
    clep = clep_loss(logits[:n_groups], emotion[:n_groups])
    acc = (logits[:n_groups].argmax(-1) == emotion[:n_groups]).float().mean()
    stats = {"acc": float(acc)}
    if n_pairs == 0:
        return clep, stats
    target = logits[n_groups:].gather(1, emotion[n_groups:, None])[:, 0]
    natural, base = target[:n_pairs], target[n_pairs:]
    pair_loss = base_negative_loss(natural, base)
    stats.update(
        loss_clep=float(clep.detach()),
        loss_base=float(pair_loss.detach()),
        base_pair_acc=float((natural > base).float().mean()),
    )
    return clep + weight * pair_loss, stats


def preference_pairs(data: EmotionMels, max_pairs: int) -> list[tuple[int, int]]:
    """Ordered (correct, wrong) utterance pairs of the same group in different emotions; at most
    ``max_pairs``, evenly spaced over the full list."""
    pairs = [
        (a, b)
        for group in data.groups
        for a in group
        for b in group
        if data.emotions[a] != data.emotions[b]
    ]
    if len(pairs) > max_pairs:
        keep = np.linspace(0, len(pairs) - 1, max_pairs).round().astype(int)
        pairs = [pairs[i] for i in keep]
    return pairs


@torch.no_grad()
def preference_accuracy_vs_t(
    model: EASPM,
    data: EmotionMels,
    schedule: NoiseSchedule,
    n_bins: int,
    max_pairs: int,
    seed: int = 0,
    batch_size: int = 64,
) -> PreferenceAccuracy:
    """Each pair scored at every bin centre ``t`` with one shared ``ε`` per pair and ``t``."""
    pairs = preference_pairs(data, max_pairs)
    if not pairs:
        raise ValueError("no two utterances of one speaker and sentence differ in emotion")
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    centres = (torch.arange(n_bins, dtype=torch.float32) + 0.5) / n_bins
    wins, loses, times = [], [], []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        members = [i for pair in chunk for i in pair]
        x0, mask = pad_mels([data.mels[i] for i in members])
        mu, _ = pad_mels([data.mus[i] for i in members])
        # [2, B, ...]: the correct member first, then the wrong one
        x0, mu = (x.view(len(chunk), 2, *x.shape[1:]).transpose(0, 1) for x in (x0, mu))
        mask = mask.view(len(chunk), 2, -1).transpose(0, 1)
        target = torch.tensor([data.emotions[a] for a, _ in chunk])
        for t in centres.tolist():
            t_batch = torch.full((len(chunk),), t)
            x_t, _ = make_noisy_pairs(x0, mu, mask, schedule, t=t_batch, generator=generator)
            wins.append(model.score(x_t[0], t_batch, mask[0], target))
            loses.append(model.score(x_t[1], t_batch, mask[1], target))
            times.append(t_batch)
    return preference_accuracy_by_t(torch.cat(wins), torch.cat(loses), torch.cat(times), n_bins)


def write_accuracy_tsv(acc: PreferenceAccuracy, path: Path) -> None:
    """``t_lo t_hi accuracy pairs`` per bin (the plot's data, for tables and tests)."""
    lines = ["t_lo\tt_hi\taccuracy\tpairs"]
    for i in range(len(acc.accuracy)):
        lines.append(
            f"{float(acc.edges[i]):.3f}\t{float(acc.edges[i + 1]):.3f}\t"
            f"{float(acc.accuracy[i]):.4f}\t{int(acc.counts[i])}"
        )
    write_text_atomic(path, "\n".join(lines) + "\n")


def plot_accuracy(acc: PreferenceAccuracy, path: Path, title: str) -> None:
    """Preference accuracy against diffusion time, chance level marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = ((acc.edges[:-1] + acc.edges[1:]) / 2).numpy()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(centres, acc.accuracy.numpy(), marker="o")
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xlabel("diffusion time t (0 = clean mel, 1 = noise)")
    ax.set_ylabel("pairwise preference accuracy")
    ax.set_ylim(0.0, 1.0)
    ax.set_title(title)
    ax.legend(loc="lower left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LambdaLR factor: linear warm-up, then cosine decay to zero at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor
