"""Stage 3 of the HPRO recipe: train the reward codec, HPRO's reward model over speech tokens.

    python -m local_lib.bin.train_reward_codec --config conf/reward_codec_mini.yaml --seed 0 \\
        --train-dir data/train --valid-dir data/dev --out-dir exp/reward_codec \\
        --tokenizer dump/speech_tokenizer/tokenizer.pt \\
        --train-tokens dump/train/speech_tokens --valid-tokens dump/dev/speech_tokens

The model (``local_lib.models.reward_codec``) splits the natural speech tokens of stage 2 into
content and style codes. Loss: token reconstruction (cross-entropy) + ``text_weight`` · CTC of
the content decoder + ``emotion_weight`` · emotion cross-entropy + ``word_weight`` · the word
head's ``Σ_d (1 − CCC_d)`` plus its MSE, against targets taken from each utterance's audio
(``wav.scp``): per word, the mean and spread of log-F0 over its voiced frames and its mean
energy, each z-scored per speaker (**[ours]**: ESD has no word-level emotion labels). Words are
located in each batch by CTC alignment of the text to the codec's own content decoder (shared
out by text units while the decoder cannot yet hold the text).

Writes ``<out-dir>/model.pt`` after every epoch (resumed from it), ``train.log``,
``config.yaml`` and ``command.sh``. Each epoch logs, on the dev tokens, one accuracy per head:
``recon_acc`` (input tokens rebuilt), ``valid_wer``/``valid_cer`` (text), ``dev_acc_emotion``
and ``word_ccc`` (mean CCC of the word dimensions).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from local_lib.bin.train_token2text import TokenSet, accuracy, load_token_set, noisy
from local_lib.data.audio import load_audio
from local_lib.data.kaldi_dir import load_data_dir
from local_lib.eval.error_rate import char_errors, word_errors
from local_lib.eval.prosody import ProsodyConfig, energy_db, f0_contour
from local_lib.models.asr_units import AsrUnits
from local_lib.models.config_yaml import setup_logging, stage3_config, stage3_parser
from local_lib.models.fit import TrainConfig, add_device_option, fit, resolve_device
from local_lib.models.reward_codec import RewardCodec, RewardCodecConfig, RewardCodecOutput
from local_lib.models.speech_tokenizer import load_speech_tokenizer
from local_lib.rl.hpro import ccc, word_loss

log = logging.getLogger("train_reward_codec")
EVAL_BATCH = 32
WORD_DIMS = ("f0_mean", "f0_spread", "energy_mean")


@dataclass(frozen=True)
class RewardCodecRecipeConfig:
    """conf/reward_codec*.yaml."""

    model: RewardCodecConfig = RewardCodecConfig()
    train: TrainConfig = TrainConfig()
    text_weight: float = 1.0
    emotion_weight: float = 1.0
    word_weight: float = 1.0
    token_noise: float = 0.0  # probability of replacing a training token by a random one
    max_utts: int | None = None

    def __post_init__(self) -> None:
        for name in ("text_weight", "emotion_weight", "word_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.token_noise < 1.0:
            raise ValueError(f"token_noise must be in [0, 1), got {self.token_noise}")


@dataclass(frozen=True)
class Contours:
    """Per-utterance prosody contours, z-scored per speaker: log-F0 (nan where unvoiced) and
    energy, at ``frames_per_token`` frames a speech token."""

    log_f0: list[np.ndarray]
    energy: list[np.ndarray]
    frames_per_token: float


def speaker_contours(
    wavs: Sequence[np.ndarray], speakers: Sequence[str], token_rate: float,
    cfg: ProsodyConfig = ProsodyConfig(),
) -> Contours:  # fmt: skip
    """Log-F0 and energy of each utterance, each z-scored over its speaker's frames (voiced
    frames for F0), so a word's value says how high or loud it is for that speaker."""
    f0s = [f0_contour(w, cfg) for w in wavs]
    log_f0 = [np.where(f > 0, np.log(np.maximum(f, 1e-9)), np.nan) for f in f0s]
    energy = [energy_db(w, cfg) for w in wavs]
    out_f0, out_energy = list(log_f0), list(energy)
    for spk in sorted(set(speakers)):
        rows = [i for i, s in enumerate(speakers) if s == spk]
        for values, out in ((log_f0, out_f0), (energy, out_energy)):
            pooled = np.concatenate([values[i] for i in rows])
            mean, std = np.nanmean(pooled), np.nanstd(pooled)
            for i in rows:
                out[i] = (values[i] - mean) / max(float(std), 1e-6)
    return Contours(out_f0, out_energy, cfg.sample_rate / cfg.hop_length / token_rate)


def word_targets(contours: Contours, rows: Sequence[int], spans: torch.Tensor) -> torch.Tensor:
    """``[B, W, 3]`` per word: mean and standard deviation of z-log-F0 over its voiced frames
    (0 without any) and its mean z-energy; padding words are 0."""
    out = torch.zeros(*spans.shape[:2], len(WORD_DIMS))
    rate = contours.frames_per_token
    for b, row in enumerate(rows):
        f0, energy = contours.log_f0[row], contours.energy[row]
        for w, (start, end) in enumerate(spans[b].tolist()):
            if end <= start:
                continue
            lo = min(int(round(start * rate)), len(energy) - 1)
            hi = max(lo + 1, int(round(end * rate)))
            voiced = f0[lo:hi][~np.isnan(f0[lo:hi])]
            if voiced.size:
                out[b, w, 0], out[b, w, 1] = float(voiced.mean()), float(voiced.std())
            out[b, w, 2] = float(energy[lo:hi].mean())
    return out


def load_contours(data_dir: Path, utts: Sequence[str], token_rate: float) -> Contours:
    data = load_data_dir(data_dir)
    wavs = [load_audio(data.wav_scp[u]) for u in utts]
    return speaker_contours(wavs, [data.utt2spk[u] for u in utts], token_rate)


def codec_losses(
    codec: RewardCodec,
    out: RewardCodecOutput,
    ids: torch.Tensor,
    texts: Sequence[str],
    emotion: torch.Tensor,
    word_ref: torch.Tensor,
    spans: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The training terms of a batch: reconstruction of ``ids`` ``[B, T]``, CTC per unit,
    emotion cross-entropy and the word head's ``Σ(1 − CCC)`` + MSE against ``word_ref``."""
    mask = out.mask
    recon = torch.nn.functional.cross_entropy(out.recon_logits[mask], ids[mask])
    words = codec.net.pool_words(out.style_hidden, spans)
    word_mask = (spans[..., 1] > spans[..., 0]).to(words.device)
    mse = ((words - word_ref) ** 2).mean(dim=-1)[word_mask].mean()
    return {
        "recon": recon,
        "text": codec.text_nll(out, texts).mean(),
        "emotion": torch.nn.functional.cross_entropy(out.emotion_logits, emotion),
        "word": word_loss(words, word_ref, word_mask) + mse,
    }


@torch.no_grad()
def evaluate(codec: RewardCodec, tokens: Sequence[Sequence[int]], texts: Sequence[str],
             contours: Contours) -> dict[str, list]:  # fmt: skip
    """Per utterance: tokens rebuilt right, transcript, emotion, and (word CCCs per dimension)."""
    res: dict[str, list] = {"recon": [], "hyps": [], "emotions": [], "word_ccc": []}
    for start in range(0, len(tokens), EVAL_BATCH):
        rows = list(range(start, min(start + EVAL_BATCH, len(tokens))))
        out = codec.run_ids([tokens[i] for i in rows])
        ids, _ = codec.pad_ids([tokens[i] for i in rows])
        hit = (out.recon_logits.argmax(dim=-1) == ids) & out.mask
        res["recon"] += (hit.sum(1) / out.mask.sum(1)).tolist()
        res["hyps"] += codec.transcripts(out)
        res["emotions"] += codec.predicted_emotions(out)
        spans = codec.word_spans(out, [texts[i] for i in rows])
        words = codec.net.pool_words(out.style_hidden, spans).cpu()
        ref, mask = word_targets(contours, rows, spans), spans[..., 1] > spans[..., 0]
        values = ccc(words.transpose(1, 2), ref.transpose(1, 2), mask[:, None, :])
        res["word_ccc"] += values[mask.sum(1) >= 2].mean(dim=-1).tolist()
    return res


def dev_metrics(res: dict[str, list], valid: TokenSet, emotions: Sequence[str]) -> dict:
    w = [word_errors(r, h) for r, h in zip(valid.texts, res["hyps"], strict=True)]
    c = [char_errors(r, h) for r, h in zip(valid.texts, res["hyps"], strict=True)]
    gold = valid.labels["emotion"]
    known = [k for k, x in enumerate(gold) if x in emotions]
    return {
        "recon_acc": float(np.mean(res["recon"])),
        "valid_wer": sum(e.errors for e in w) / max(1, sum(e.ref_len for e in w)),
        "valid_cer": sum(e.errors for e in c) / max(1, sum(e.ref_len for e in c)),
        "dev_acc_emotion": accuracy(res["emotions"], gold, known),
        "word_ccc": float(np.mean(res["word_ccc"])) if res["word_ccc"] else float("nan"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = stage3_parser(__doc__)
    add_device_option(parser)
    args = parser.parse_args(argv)
    if None in (args.tokenizer, args.train_tokens, args.valid_tokens):
        parser.error("the reward codec reads speech tokens: give --tokenizer, --train-tokens and "
                     "--valid-tokens (the codec-LM family's stage 3 does)")  # fmt: skip
    device = resolve_device(args.device)
    torch.set_num_threads(args.num_threads)
    setup_logging(args.out_dir / "train.log")
    conf = stage3_config(args, RewardCodecRecipeConfig)
    tokenizer = load_speech_tokenizer(args.tokenizer)
    vocab = tokenizer.vocab_size
    train = load_token_set(args.train_dir, args.train_tokens, vocab, conf.max_utts)
    valid = load_token_set(args.valid_dir, args.valid_tokens, vocab, conf.max_utts)
    if "emotion" not in train.labels or "emotion" not in valid.labels:
        raise ValueError(f"{args.train_dir}, {args.valid_dir}: the reward codec needs utt2emo")
    emotions = sorted(set(train.labels["emotion"]))
    units = AsrUnits.from_texts(train.texts, args.token_list)
    train_prosody = load_contours(args.train_dir, train.utts, tokenizer.token_rate)
    valid_prosody = load_contours(args.valid_dir, valid.utts, tokenizer.token_rate)
    torch.manual_seed(conf.train.seed)  # the initial weights, so a seed reproduces the run
    codec = RewardCodec.build(conf.model, vocab, units, emotions, len(WORD_DIMS))
    net = codec.net.to(device)
    gold = torch.tensor([emotions.index(x) for x in train.labels["emotion"]])
    gen = torch.Generator().manual_seed(conf.train.seed)
    weights = {"recon": 1.0, "text": conf.text_weight, "emotion": conf.emotion_weight,
               "word": conf.word_weight}  # fmt: skip

    def batch_loss(idx: list[int]) -> torch.Tensor:
        tokens = [noisy(train.tokens[i], conf.token_noise, vocab, gen) for i in idx]
        out = codec.run_ids(tokens)
        texts = [train.texts[i] for i in idx]
        spans = codec.word_spans(out, texts)
        terms = codec_losses(
            codec, out, codec.pad_ids(tokens)[0], texts, gold[idx].to(device),
            word_targets(train_prosody, idx, spans).to(device), spans,
        )  # fmt: skip
        return sum(weights[name] * value for name, value in terms.items())

    def validate() -> dict[str, float]:
        res = evaluate(codec, valid.tokens, valid.texts, valid_prosody)
        return dev_metrics(res, valid, emotions)

    log.info(
        "training the reward codec on %d utterances (%d emotions), %d parameters, on %s",
        len(train.utts), len(emotions), sum(p.numel() for p in net.parameters()), device,
    )  # fmt: skip
    fit(net, batch_loss, [len(t) for t in train.tokens], conf.train, args.out_dir / "model.pt",
        codec.state, validate)  # fmt: skip
    log.info("wrote %s", args.out_dir / "model.pt")


if __name__ == "__main__":
    main()
