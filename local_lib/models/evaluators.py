"""Evaluator models behind the scoring tool's interfaces, and loading them from a path.

``load_evaluator`` accepts our CTC ASR / classifier checkpoints, an ESPnet reward-ASR
checkpoint (so the reward model's own WER can be reported beside the evaluator's), or a local
Whisper directory.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from local_lib.data.features import LogMelConfig, log_mel_torch
from local_lib.models.asr_units import AsrUnits
from local_lib.models.evaluator_nets import CtcASRNet, EvaluatorNetConfig, UtteranceClassifierNet


def pad_frames(mels: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([m.shape[0] for m in mels], dtype=torch.long)
    batch = torch.zeros(len(mels), int(lens.max()), mels[0].shape[1])
    for b, m in enumerate(mels):
        batch[b, : m.shape[0]] = m
    return batch, lens


def ctc_greedy(log_probs: torch.Tensor, lens: torch.Tensor, blank: int) -> list[list[int]]:
    """Best-path CTC decoding: argmax, merge repeats, drop blanks."""
    best = log_probs.argmax(dim=-1)
    out = []
    for row, n in zip(best.tolist(), lens.tolist()):
        ids, prev = [], None
        for t in row[:n]:
            if t != prev and t != blank:
                ids.append(t)
            prev = t
        out.append(ids)
    return out


def net_inputs(
    net: torch.nn.Module, wavs: Sequence[np.ndarray], cfg: LogMelConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel of ``wavs`` (computed on the CPU) as ``mel_net_inputs``."""
    mels = [log_mel_torch(torch.as_tensor(np.asarray(w, dtype=np.float32)), cfg) for w in wavs]
    return mel_net_inputs(net, mels)


def mel_net_inputs(
    net: torch.nn.Module, mels: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded log-mel ``[B, T, F]`` and frame counts on the device of ``net``'s weights."""
    device = next(net.parameters()).device
    mel, lens = pad_frames(mels)
    return mel.to(device), lens.to(device)


def snap_to_lexicon(text: str, lexicon: Sequence[str]) -> str:
    """Closed-vocabulary output: each word not in ``lexicon`` becomes the lexicon word at the
    smallest character edit distance (the first in lexicon order on a tie) when that distance
    is at most a third of the word's length (at least 1); a word further from every lexicon
    word stays as it is, so it still counts as an error."""
    known = set(lexicon)
    out = []
    for word in text.split():
        if word not in known:
            limit = max(1, len(word) // 3)
            best = process.extractOne(
                word, lexicon, scorer=Levenshtein.distance, score_cutoff=limit
            )
            word = best[0] if best is not None else word
        out.append(word)
    return " ".join(out)


class CtcEvaluatorASR:
    """Greedy CTC transcription; with a ``lexicon`` (the training transcripts' words) the output
    is closed-vocabulary, as a Kaldi decoder's is (``snap_to_lexicon``)."""

    def __init__(
        self,
        net: CtcASRNet,
        units: AsrUnits,
        mel_cfg: LogMelConfig,
        lexicon: Sequence[str] | None = None,
    ):
        self.net, self.units, self.mel_cfg = net.eval(), units, mel_cfg
        self.lexicon = sorted(lexicon) if lexicon else None

    def transcribe(self, wavs: Sequence[np.ndarray]) -> list[str]:
        return self.closed(self.transcribe_open(wavs))

    def transcribe_open(self, wavs: Sequence[np.ndarray]) -> list[str]:
        """The raw greedy transcripts, before any lexicon."""
        return self._greedy(net_inputs(self.net, wavs, self.mel_cfg))

    def transcribe_mel(self, mels: Sequence[torch.Tensor]) -> list[str]:
        """The same from log-mel in ``mel_cfg`` (``[frames, n_mels]`` each), skipping audio."""
        return self.closed(self._greedy(mel_net_inputs(self.net, mels)))

    def closed(self, texts: list[str]) -> list[str]:
        """``texts`` snapped to the lexicon (unchanged without one)."""
        if self.lexicon is None:
            return texts
        return [snap_to_lexicon(t, self.lexicon) for t in texts]

    @torch.no_grad()
    def _greedy(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> list[str]:
        log_probs, lens = self.net(*inputs)
        ids = ctc_greedy(log_probs, lens, self.units.blank_id)
        return [self.units.decode(row) for row in ids]


class CtcRewardASR:
    """A CTC ASR used as a GRPO reward model: greedy transcripts (open vocabulary) for the WER
    reward and ``-log P_ctc(text | audio)`` per character for the NLL reward. The CTC score
    rests on the audio alone; on the mini corpora it tracks intelligibility more closely than
    the small attention decoder's cross-entropy, which leans on sentences it has memorised."""

    def __init__(self, asr: CtcEvaluatorASR):
        if asr.lexicon is not None:
            raise ValueError("a reward ASR must be open-vocabulary: train it with lexicon: false")
        self.asr, self.mel_cfg = asr, asr.mel_cfg
        self.sample_rate = asr.mel_cfg.sample_rate

    def transcribe(self, wavs: Sequence[np.ndarray]) -> list[str]:
        return self.asr.transcribe(wavs)

    def transcribe_mel(self, mels: Sequence[torch.Tensor]) -> list[str]:
        return self.asr.transcribe_mel(mels)

    def nll(self, wavs: Sequence[np.ndarray], texts: Sequence[str]) -> torch.Tensor:
        """``[B]`` CTC negative log-likelihood of each text divided by its length in units."""
        return self._nll(net_inputs(self.asr.net, wavs, self.asr.mel_cfg), texts)

    def nll_mel(self, mels: Sequence[torch.Tensor], texts: Sequence[str]) -> torch.Tensor:
        return self._nll(mel_net_inputs(self.asr.net, mels), texts)

    @torch.no_grad()
    def _nll(self, inputs: tuple[torch.Tensor, torch.Tensor], texts: Sequence[str]) -> torch.Tensor:
        log_probs, lens = self.asr.net(*inputs)
        ids = [self.asr.units.encode(t) for t in texts]
        n_units = torch.tensor([len(i) for i in ids])
        if int(n_units.min()) == 0:
            empty = [t for t, i in zip(texts, ids, strict=True) if not i]
            raise ValueError(f"CTC reward: reference text with no units: {empty[0]!r}")
        total = torch.nn.functional.ctc_loss(
            log_probs.float().transpose(0, 1).cpu(), torch.tensor([u for i in ids for u in i]),
            lens.cpu(), n_units, blank=self.asr.units.blank_id, reduction="none",
        )  # fmt: skip
        return total / n_units


def load_reward_asr(path: Path):
    """The reward ASR in a checkpoint: the ESPnet encoder-decoder (``train_reward_asr``) or an
    open-vocabulary CTC ASR trained by ``train_evaluator`` (``CtcRewardASR``)."""
    scorer = load_evaluator(path)
    if isinstance(scorer, CtcEvaluatorASR):
        return CtcRewardASR(scorer)
    if not hasattr(scorer, "nll"):
        raise ValueError(f"{path}: not an ASR checkpoint, cannot be a reward ASR")
    return scorer


class ClassifierEvaluator:
    """Emotion or speaker model: ``classify`` gives labels, ``embed`` the similarity space."""

    def __init__(self, net: UtteranceClassifierNet, labels: Sequence[str], mel_cfg: LogMelConfig):
        self.net, self.labels, self.mel_cfg = net.eval(), list(labels), mel_cfg

    @torch.no_grad()
    def embed(self, wavs: Sequence[np.ndarray]) -> np.ndarray:
        return self.net.embedding(*net_inputs(self.net, wavs, self.mel_cfg)).cpu().numpy()

    @torch.no_grad()
    def posteriors(self, wavs: Sequence[np.ndarray]) -> torch.Tensor:
        """``[B, len(labels)]`` class probabilities."""
        logits, _ = self.net(*net_inputs(self.net, wavs, self.mel_cfg))
        return torch.softmax(logits, dim=-1).cpu()

    def classify(self, wavs: Sequence[np.ndarray]) -> list[str]:
        return [self.labels[i] for i in self.posteriors(wavs).argmax(dim=-1).tolist()]


def build_evaluator(state: dict) -> CtcEvaluatorASR | ClassifierEvaluator:
    """An evaluator from a checkpoint dict (``kind``, ``net_config``, ``mel_config``, ``model``
    and ``tokens`` (+ ``sentencepiece`` for BPE units, optional ``lexicon``) or ``labels``),
    its weights loaded when present."""
    cfg = EvaluatorNetConfig.from_dict(state["net_config"])
    mel_cfg = LogMelConfig(**state["mel_config"])
    if cfg.kind == "asr":
        units = AsrUnits.from_state(state)
        net = CtcASRNet(cfg, units.size)
        wrapper = CtcEvaluatorASR(net, units, mel_cfg, state.get("lexicon"))
    else:
        net = UtteranceClassifierNet(cfg, len(state["labels"]))
        wrapper = ClassifierEvaluator(net, state["labels"], mel_cfg)
    if "model" in state:
        net.load_state_dict(state["model"])
    net.eval()
    return wrapper


def load_evaluator(path: Path):
    """Evaluator from a checkpoint file or a local Whisper directory; errors name the path.

    The Whisper and ESPnet back ends are imported only for their own checkpoint kinds:
    transformers and espnet2 take seconds to import and most scoring runs need neither.
    """
    path = Path(path)
    if path.is_dir():
        from local_lib.models.whisper_asr import WhisperRewardASR

        return WhisperRewardASR(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: evaluator checkpoint not found")
    state = torch.load(path, map_location="cpu", weights_only=False)
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind == "espnet_reward_asr":
        from local_lib.models.espnet_asr import EspnetRewardASR

        return EspnetRewardASR.from_checkpoint(path)
    if kind != "evaluator":
        raise ValueError(f"{path}: not an evaluator checkpoint (kind={kind!r})")
    return build_evaluator(state)
