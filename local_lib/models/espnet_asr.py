"""Reward ASR on an ESPnet2 attention encoder–decoder (with ESPnet's auxiliary CTC branch).

Built directly from espnet2 classes (fbank frontend, utterance MVN, Transformer encoder and
decoder) over character units; the decoder's MultiHeadedAttention modules keep ``.attn`` after
a forward, which is how the cross-attention is read. Transcription is greedy joint
CTC/attention decoding: on mini corpora the attention decoder alone memorises the training
sentences and rarely emits eos on new ones, while the CTC prefix score follows the audio.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from espnet2.asr.ctc import CTC
from espnet2.asr.decoder.transformer_decoder import TransformerDecoder
from espnet2.asr.encoder.transformer_encoder import TransformerEncoder
from espnet2.asr.espnet_model import ESPnetASRModel
from espnet2.asr.frontend.default import DefaultFrontend
from espnet2.asr.specaug.specaug import SpecAug
from espnet2.layers.utterance_mvn import UtteranceMVN

from local_lib.models.asr_reward import RewardASR
from local_lib.models.asr_units import AsrUnits


@dataclass(frozen=True)
class EspnetASRConfig:
    """Model size; the defaults are the mini-corpus size."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int = 80
    d_model: int = 144
    heads: int = 4
    ffn: int = 576
    encoder_layers: int = 4
    decoder_layers: int = 2
    dropout: float = 0.1
    ctc_weight: float = 0.3
    lsm_weight: float = 0.1
    decode_ctc_weight: float = 0.3
    # SpecAugment in training only (ESPnet applies it in train mode): two frequency masks of
    # up to n_mels/5 bins and two time masks of up to 0.4 s, no time warp.
    specaug: bool = False

    @classmethod
    def from_dict(cls, values: dict) -> "EspnetASRConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown reward ASR model keys: {unknown}")
        return cls(**values)


def build_espnet_asr(vocab: AsrUnits, cfg: EspnetASRConfig) -> ESPnetASRModel:
    """A fresh ESPnetASRModel (conv2d subsampling ×4, so one encoder frame is 4 hops)."""
    tokens = list(vocab.tokens)
    encoder = TransformerEncoder(
        input_size=cfg.n_mels,
        output_size=cfg.d_model,
        attention_heads=cfg.heads,
        linear_units=cfg.ffn,
        num_blocks=cfg.encoder_layers,
        dropout_rate=cfg.dropout,
        positional_dropout_rate=cfg.dropout,
        attention_dropout_rate=cfg.dropout,
        input_layer="conv2d",
    )
    decoder = TransformerDecoder(
        vocab_size=vocab.size,
        encoder_output_size=cfg.d_model,
        attention_heads=cfg.heads,
        linear_units=cfg.ffn,
        num_blocks=cfg.decoder_layers,
        dropout_rate=cfg.dropout,
        positional_dropout_rate=cfg.dropout,
        self_attention_dropout_rate=cfg.dropout,
        src_attention_dropout_rate=cfg.dropout,
        use_flash_attn=False,
        use_sdpa=False,
    )
    return ESPnetASRModel(
        vocab_size=vocab.size,
        token_list=tokens,
        frontend=DefaultFrontend(
            fs=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels
        ),
        specaug=spec_augment(cfg) if cfg.specaug else None,
        normalize=UtteranceMVN(),
        preencoder=None,
        encoder=encoder,
        postencoder=None,
        decoder=decoder,
        ctc=CTC(odim=vocab.size, encoder_output_size=cfg.d_model),
        joint_network=None,
        ctc_weight=cfg.ctc_weight,
        lsm_weight=cfg.lsm_weight,
        report_cer=False,
        report_wer=False,
    )


def spec_augment(cfg: EspnetASRConfig) -> SpecAug:
    """ESPnet's SpecAug sized to the config's mel bins and hop."""
    return SpecAug(
        apply_time_warp=False,
        freq_mask_width_range=(0, max(1, cfg.n_mels // 5)),
        num_freq_mask=2,
        time_mask_width_range=(0, max(1, round(0.4 * cfg.sample_rate / cfg.hop_length))),
        num_time_mask=2,
    )


def pad_waveforms(wavs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded float batch ``[B, N]`` and the lengths ``[B]``."""
    lens = torch.tensor([len(w) for w in wavs], dtype=torch.long)
    batch = torch.zeros(len(wavs), int(lens.max()))
    for b, w in enumerate(wavs):
        batch[b, : len(w)] = torch.as_tensor(np.asarray(w, dtype=np.float32))
    return batch, lens


class CtcPrefixScorer:
    """CTC prefix probabilities of one growing hypothesis per utterance, scored for every next
    unit at once. Mixed into greedy attention decoding, it keeps the output tied to the audio:
    a small-data attention decoder alone drifts into its training sentences and misses eos."""

    def __init__(self, logp: torch.Tensor, lens: torch.Tensor, blank: int, eos: int):
        device = logp.device
        frames = torch.arange(logp.shape[1], device=device)[None, :, None]
        padding = torch.full_like(logp, float("-inf"))
        padding[..., blank] = 0.0
        # Past its length an utterance only emits blank, so every path ends at the last frame.
        self.logp = torch.where(frames < lens[:, None, None], logp, padding)
        self.blank, self.eos = blank, eos
        self.r_blank = self.logp[..., blank].cumsum(dim=1)
        self.r_label = torch.full_like(self.r_blank, float("-inf"))
        self.last = torch.full((logp.shape[0],), -1, dtype=torch.long, device=device)
        self.score = torch.zeros(logp.shape[0], device=device)
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def extension_scores(self) -> torch.Tensor:
        """``log p(prefix + c) - log p(prefix)`` for every unit ``c`` ``[B, V]`` (eos: the
        prefix is the whole transcript)."""
        logp, ninf = self.logp, float("-inf")
        _, n_frames, vocab = logp.shape
        total = torch.logaddexp(self.r_blank, self.r_label)
        repeat = torch.arange(vocab, device=logp.device)[None, None, :] == self.last[:, None, None]
        phi = torch.where(repeat, self.r_blank[..., None], total[..., None])  # [B, T, V]
        first = logp[:, 0] if bool((self.last < 0).all()) else torch.full_like(logp[:, 0], ninf)
        label, blank = [first], [torch.full_like(first, ninf)]
        prefix = first
        for t in range(1, n_frames):
            label.append(torch.logaddexp(label[-1], phi[:, t - 1]) + logp[:, t])
            blank.append(torch.logaddexp(blank[-1], label[-2]) + logp[:, t, self.blank, None])
            prefix = torch.logaddexp(prefix, phi[:, t - 1] + logp[:, t])
        self._pending = (torch.stack(label, dim=1), torch.stack(blank, dim=1))
        prefix[:, self.eos] = total[:, -1]
        prefix[:, self.blank] = ninf
        return prefix - self.score[:, None]

    def advance(self, chosen: torch.Tensor, step_scores: torch.Tensor) -> None:
        """Extend each hypothesis by its chosen unit (after ``extension_scores``)."""
        label, blank = self._pending
        index = chosen[:, None, None].expand(-1, label.shape[1], 1)
        self.r_label = label.gather(2, index).squeeze(2)
        self.r_blank = blank.gather(2, index).squeeze(2)
        self.score = self.score + step_scores.gather(1, chosen[:, None]).squeeze(1)
        self.last = chosen


class EspnetRewardASR(RewardASR):
    def __init__(self, model: ESPnetASRModel, vocab: AsrUnits, cfg: EspnetASRConfig):
        self.model, self.vocab, self.cfg = model.eval(), vocab, cfg
        self.sample_rate = cfg.sample_rate
        self.frame_shift_s = 4 * cfg.hop_length / cfg.sample_rate
        self.eos_id = vocab.sos_eos

    @classmethod
    def from_checkpoint(cls, path: Path) -> "EspnetRewardASR":
        state = torch.load(Path(path), map_location="cpu", weights_only=False)
        if state.get("kind") != "espnet_reward_asr":
            raise ValueError(f"{path}: not a reward ASR checkpoint (kind={state.get('kind')!r})")
        vocab, cfg = AsrUnits.from_state(state), EspnetASRConfig.from_dict(state["config"])
        model = build_espnet_asr(vocab, cfg)
        model.load_state_dict(state["model"])
        return cls(model, vocab, cfg)

    def checkpoint(self) -> dict:
        return {
            "kind": "espnet_reward_asr",
            **self.vocab.state(),
            "config": asdict(self.cfg),
            "model": self.model.state_dict(),
        }

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, wavs):
        speech, lens = pad_waveforms(wavs)
        return self.model.encode(speech.to(self.device), lens.to(self.device))

    def decoder_forward(self, memory, memory_lens, tokens, token_lens):
        tokens, token_lens = tokens.to(memory.device), token_lens.to(memory.device)
        logits, _ = self.model.decoder(memory, memory_lens, tokens, token_lens)
        attn = [layer.src_attn.attn for layer in self.model.decoder.decoders]
        return logits, attn

    @torch.no_grad()
    def transcribe(self, wavs: Sequence[np.ndarray], max_len: int | None = None) -> list[str]:
        """Batched greedy decoding on ``(1 - w) * attention + w * CTC prefix`` log-scores
        (``w`` = ``decode_ctc_weight``), ESPnet's joint decoding with a beam of one; stops at
        eos or ``max_len`` tokens (default: the encoder length, CTC's own limit)."""
        memory, memory_lens = self.encode(wavs)
        weight, eos = self.cfg.decode_ctc_weight, self.eos_id
        ctc = None
        if weight > 0:
            logp = self.model.ctc.log_softmax(memory)
            ctc = CtcPrefixScorer(logp, memory_lens, self.vocab.blank_id, eos)
        # Per-utterance limit, so a batch decodes exactly as its utterances one by one.
        limit = memory_lens if max_len is None else torch.full_like(memory_lens, max_len)
        tokens = torch.full((len(wavs), 1), eos, dtype=torch.long, device=memory.device)
        done = limit <= 0
        for step in range(int(limit.max())):
            lens = torch.full((len(wavs),), tokens.shape[1], device=memory.device)
            logits, _ = self.decoder_forward(memory, memory_lens, tokens, lens)
            scores = torch.log_softmax(logits[:, -1].float(), dim=-1)
            ctc_scores = None
            if ctc is not None:
                ctc_scores = ctc.extension_scores()
                scores = (1 - weight) * scores + weight * ctc_scores
            # No finite score left (CTC has run out of frames): the hypothesis ends here.
            done |= ~torch.isfinite(scores.max(dim=-1).values) | (step >= limit)
            nxt = torch.where(done, torch.full_like(done, eos, dtype=torch.long), scores.argmax(-1))
            if ctc is not None:
                ctc.advance(nxt, ctc_scores)
            done |= nxt == eos
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            if done.all():
                break
        texts = []
        for row in tokens[:, 1:].tolist():
            texts.append(self.ids_to_text(row[: row.index(eos)] if eos in row else row))
        return texts

    def prefix_ids(self):
        return [self.vocab.sos_eos]

    def text_to_ids(self, text):
        return self.vocab.encode(text)

    def token_pieces(self, ids):
        return self.vocab.pieces(ids)
