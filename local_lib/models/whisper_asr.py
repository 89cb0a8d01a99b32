"""Reward ASR over a Hugging Face Whisper model loaded from a local directory.

The directory holds what ``save_pretrained`` writes for the model and its WhisperProcessor;
nothing is downloaded. Attention runs in the eager implementation so cross-attention weights
are returned. Whisper's encoder always sees the padded chunk; the valid frames are those of
the real audio (two mel hops per encoder frame), over which attention rows are renormalised.
"""

from pathlib import Path

from transformers import WhisperForConditionalGeneration, WhisperProcessor

from local_lib.models.asr_reward import RewardASR


class WhisperRewardASR(RewardASR):
    def __init__(self, model_dir: Path, language: str = "en", device: str = "cpu"):
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise FileNotFoundError(f"{model_dir}: no Whisper checkpoint (config.json missing)")
        self.processor = WhisperProcessor.from_pretrained(model_dir, local_files_only=True)
        self.model = (
            WhisperForConditionalGeneration.from_pretrained(
                model_dir, attn_implementation="eager", local_files_only=True
            )
            .to(device)
            .eval()
        )
        self.device = device
        tok = self.processor.tokenizer
        fe = self.processor.feature_extractor
        self.sample_rate = fe.sampling_rate
        self.frame_shift_s = 2 * fe.hop_length / fe.sampling_rate
        self.eos_id = tok.eos_token_id
        task_tokens = [
            "<|startoftranscript|>",
            f"<|{language}|>",
            "<|transcribe|>",
            "<|notimestamps|>",
        ]
        self._prefix = tok.convert_tokens_to_ids(task_tokens)
        missing = [
            t
            for t, i in zip(task_tokens, self._prefix)
            if i is None or tok.convert_ids_to_tokens(i) != t
        ]
        if missing:
            raise ValueError(f"{model_dir}: the tokenizer has no {missing}")

    def encode(self, wavs):
        feats = self.processor.feature_extractor(
            [w for w in wavs],
            sampling_rate=self.sample_rate,
            return_tensors="pt",
            return_attention_mask=True,
        )
        memory = self.model.model.encoder(feats.input_features.to(self.device)).last_hidden_state
        lens = (feats.attention_mask.sum(dim=1) + 1) // 2
        return memory, lens.clamp(min=1, max=memory.shape[1]).to(self.device)

    def decoder_forward(self, memory, memory_lens, tokens, token_lens):
        out = self.model.model.decoder(
            input_ids=tokens.to(self.device),
            encoder_hidden_states=memory,
            output_attentions=True,
            use_cache=False,
        )
        return self.model.proj_out(out.last_hidden_state), list(out.cross_attentions)

    def prefix_ids(self):
        return list(self._prefix)

    def text_to_ids(self, text):
        return self.processor.tokenizer.encode(" " + text.strip(), add_special_tokens=False)

    def token_pieces(self, ids):
        tok = self.processor.tokenizer
        return [tok.decode([int(i)], skip_special_tokens=True) for i in ids]
