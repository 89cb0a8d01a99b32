"""Reward ASR on an ESPnet2 attention encoder–decoder (with ESPnet's auxiliary CTC branch).

Built directly from espnet2 classes (fbank frontend, utterance MVN, Transformer encoder and
decoder) over character units; the decoder's MultiHeadedAttention modules keep ``.attn`` after
a forward, which is how the cross-attention is read.
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
        specaug=None,
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


def pad_waveforms(wavs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded float batch ``[B, N]`` and the lengths ``[B]``."""
    lens = torch.tensor([len(w) for w in wavs], dtype=torch.long)
    batch = torch.zeros(len(wavs), int(lens.max()))
    for b, w in enumerate(wavs):
        batch[b, : len(w)] = torch.as_tensor(np.asarray(w, dtype=np.float32))
    return batch, lens


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
        vocab, cfg = AsrUnits(state["tokens"]), EspnetASRConfig.from_dict(state["config"])
        model = build_espnet_asr(vocab, cfg)
        model.load_state_dict(state["model"])
        return cls(model, vocab, cfg)

    def checkpoint(self) -> dict:
        return {
            "kind": "espnet_reward_asr",
            "tokens": list(self.vocab.tokens),
            "config": asdict(self.cfg),
            "model": self.model.state_dict(),
        }

    def encode(self, wavs):
        speech, lens = pad_waveforms(wavs)
        return self.model.encode(speech, lens)

    def decoder_forward(self, memory, memory_lens, tokens, token_lens):
        logits, _ = self.model.decoder(memory, memory_lens, tokens, token_lens)
        attn = [layer.src_attn.attn for layer in self.model.decoder.decoders]
        return logits, attn

    def prefix_ids(self):
        return [self.vocab.sos_eos]

    def text_to_ids(self, text):
        return self.vocab.encode(text)

    def token_pieces(self, ids):
        return self.vocab.pieces(ids)
