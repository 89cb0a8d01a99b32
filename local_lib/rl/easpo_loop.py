"""The EASPO training loop: a trained Grad-TTS decoder tuned by stepwise preferences of EASPM.

Pieces: the training prompts (train texts with their speaker and emotion), the scorer (EASPM, or
[ours] an emotion classifier judging finished mels, with the Grad-TTS emotion ids mapped onto its
own), and ``EASPOPolicy``, the module the Trainer
optimises. ``EASPOPolicy.forward`` runs one ``easpo_rollout`` so that DistributedDataParallel
syncs the decoder's gradients; the frozen reference and the scorer are kept out of its
parameters and state dict (never trained, never checkpointed) and the policy stays in eval mode
(dropout off during RL) whatever mode the Trainer sets.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from local_lib.data.kaldi_dir import load_data_dir, read_kv
from local_lib.models.easpm import EASPMBundle, load_easpm
from local_lib.models.evaluators import ClassifierEvaluator, build_evaluator
from local_lib.models.gradtts import GradTTSBundle
from local_lib.rl.easpo import EASPOConfig, Scorer, easpo_rollout, frozen_reference
from local_lib.train.config import TrainSection
from local_lib.train.timing import StepTimer


@dataclass(frozen=True)
class EASPOTrainSection(TrainSection):
    """The ``train`` section of conf/easpo*.yaml (the rollout options are in ``rollout``)."""

    num_steps: int = 100
    batch_size: int = 4
    lr: float = 1e-5  # decoder learning rate (paper: 1e-5)
    max_frames: int | None = None  # skip prompts whose natural audio is longer (rollout cost)
    log_every: int = 5
    save_every: int = 25

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class EASPORecipeConfig:
    """conf/easpo*.yaml."""

    rollout: EASPOConfig = EASPOConfig()
    train: EASPOTrainSection = EASPOTrainSection()


@dataclass
class Prompts:
    """Training prompts as model ids: one per utterance of the train set."""

    utts: list[str]
    texts: list[str]
    speakers: Tensor
    emotions: Tensor


def load_prompts(
    data_dir: Path, feats_dir: Path, tts: GradTTSBundle, max_frames: int | None
) -> Prompts:
    """Text, speaker and emotion of every train utterance, as the base model's ids.

    ``feats_dir/utt2num_frames`` gives each utterance's natural length; with ``max_frames`` the
    longer ones are left out, which bounds the cost of a rollout.
    """
    data = load_data_dir(Path(data_dir))
    utt2emo = data.extras.get("utt2emo")
    if utt2emo is None:
        raise ValueError(f"{data_dir}: EASPO needs utt2emo (the target emotion of each text)")
    frames_file = Path(feats_dir) / "utt2num_frames"
    frames = {u: int(n) for u, n in read_kv(frames_file).items()}
    utts = []
    for utt in data.utts:
        if utt not in utt2emo:
            raise ValueError(f"{data_dir}/utt2emo: {utt}: no emotion label")
        if utt not in frames:
            raise ValueError(f"{frames_file}: {utt}: no frame count (run stage 2 for this set)")
        if max_frames is None or frames[utt] <= max_frames:
            utts.append(utt)
    if not utts:
        raise ValueError(f"{data_dir}: no utterance has at most max_frames={max_frames} frames")
    return Prompts(
        utts=utts,
        texts=[data.text[u] for u in utts],
        speakers=torch.tensor([tts.speaker_id(data.utt2spk[u]) for u in utts]),
        emotions=torch.tensor([tts.emotion_id(utt2emo[u]) for u in utts]),
    )


EmotionLogits = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(mel [N, frames, n_mels], t [N], mask [N, frames]) -> [N, E]``: how strongly each mel shows
each of the TTS model's ``E`` emotions, in the TTS model's order; higher is stronger."""


def _label_index(labels: list[str], tts_emotions: list[str], owner: str) -> Tensor:
    missing = [e for e in tts_emotions if e not in labels]
    if missing:
        raise ValueError(f"{owner} has no label for the TTS emotions {missing} (labels {labels})")
    return torch.tensor([labels.index(e) for e in tts_emotions])


def easpm_logits(easpm: EASPMBundle, tts_emotions: list[str]) -> EmotionLogits:
    """EASPM's scaled cosines against every emotion prompt, columns in the TTS model's order."""
    to_easpm = torch.tensor([easpm.emotion_id(e) for e in tts_emotions])

    def logits(mel: Tensor, t: Tensor, mask: Tensor) -> Tensor:
        return easpm.model.logits(mel, t, mask)[:, to_easpm]

    return logits


def classifier_logits(clf: ClassifierEvaluator, tts_emotions: list[str]) -> EmotionLogits:
    """[ours] An utterance emotion classifier read on the mels themselves (no vocoder): its
    log-posteriors over its own labels, columns in the TTS model's order. It was trained on
    clean speech, so ``t`` is ignored: use it with ``judge: finished``."""
    columns = _label_index(clf.labels, tts_emotions, "the emotion classifier")

    def logits(mel: Tensor, t: Tensor, mask: Tensor) -> Tensor:
        out, _ = clf.net(mel, mask.sum(-1))
        return torch.log_softmax(out, dim=-1)[:, columns]

    return logits


def target_scorer(logits: EmotionLogits) -> Scorer:
    """The scorer a rollout uses: each mel's value in the column of its own target emotion."""

    def score(mel: Tensor, t: Tensor, mask: Tensor, emotion: Tensor) -> Tensor:
        return logits(mel, t, mask).gather(1, emotion[:, None])[:, 0]

    return score


def easpm_scorer(easpm: EASPMBundle, tts_emotions: list[str]) -> Scorer:
    """``EASPM.score`` taking the TTS model's emotion ids (the two models order labels apart)."""
    return target_scorer(easpm_logits(easpm, tts_emotions))


def load_emotion_logits(path: Path, tts_emotions: list[str], judge: str) -> EmotionLogits:
    """The preference model of ``path``: an EASPM file, or [ours] an emotion classifier (an
    evaluator-format checkpoint of stage 3), which only ``judge: finished`` may use."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise ValueError(f"{path}: cannot read a preference model file: {err}") from err
    if not (isinstance(state, dict) and state.get("kind") == "evaluator"):
        return easpm_logits(load_easpm(path), tts_emotions)
    clf = build_evaluator(state)
    if not isinstance(clf, ClassifierEvaluator):
        raise ValueError(f"{path}: an evaluator checkpoint but not a classifier")
    if judge != "finished":
        raise ValueError(
            f"{path}: an emotion classifier judges clean speech; the rollout needs judge: "
            f"finished, not {judge!r}"
        )
    clf.net.requires_grad_(False)
    try:
        return classifier_logits(clf, tts_emotions)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


@dataclass
class PromptBatch:
    """One rollout's prompts and the seed of its random draws."""

    text: Tensor
    text_lengths: Tensor
    speaker: Tensor
    emotion: Tensor
    seed: int


class EASPOPolicy(nn.Module):
    """The trained policy; reference and scorer ride along outside the module tree."""

    def __init__(
        self, policy: nn.Module, scorer: Scorer, cfg: EASPOConfig, timer: StepTimer | None = None
    ) -> None:
        super().__init__()
        self.policy = policy
        self.cfg = cfg
        # the Trainer's timer, so a step's metrics split its seconds (easpo.TIME_PARTS)
        self.timer = StepTimer() if timer is None else timer
        # A tuple hides them from nn.Module: not parameters, not in state_dict, not in DDP.
        self._frozen = (frozen_reference(policy), scorer)

    def train(self, mode: bool = True) -> EASPOPolicy:
        super().train(mode)
        self.policy.eval()  # dropout off during RL
        return self

    def forward(self, batch: PromptBatch) -> tuple[Tensor, dict[str, float]]:
        reference, scorer = self._frozen
        out = easpo_rollout(
            self.policy,
            reference,
            scorer,
            batch.text,
            batch.text_lengths,
            batch.speaker,
            batch.emotion,
            self.cfg,
            torch.Generator().manual_seed(batch.seed),
            self.timer,
        )
        return out.loss, out.stats


def prompt_batch(
    prompts: Prompts, tts: GradTTSBundle, batch_size: int, seed: int
) -> PromptBatch:
    """``batch_size`` prompts drawn without replacement by a generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(prompts.utts), generator=gen)[:batch_size]
    text, lengths = tts.encode_texts([prompts.texts[i] for i in pick.tolist()])
    return PromptBatch(
        text=text,
        text_lengths=lengths,
        speaker=prompts.speakers[pick],
        emotion=prompts.emotions[pick],
        seed=int(torch.randint(2**62, (1,), generator=gen)),
    )
