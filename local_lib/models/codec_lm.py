"""Codec-token language model: a Hugging Face Llama over ``[text ; <speech start> speech <end>]``.

One code path serves the small model trained here (the recipe's text units, characters or
sentencepiece pieces, with speech ids offset past them) and a Llasa-style checkpoint directory
(a Llama plus a tokenizer whose speech tokens are ``<|s_N|>``), so a recipe can point at
Llasa-1B without code changes.

Zero-shot prompting as in Llasa/CosyVoice: prompt text and target text come first, then the
prompt's speech tokens after ``<speech start>``, and the model continues with target speech.

Position ids: ``sequential`` (0, 1, 2, ... as Llasa was trained) or ``text_aligned`` (ours):
speech token j sits at the position of the text unit (character or piece) it is expected to
speak, j times the prompt's text units per speech token, so the rotary attention of a speech
token finds its text at relative distance near zero (``chars_per_token`` and the docstrings
below say "character" for a text unit, the units they were written for). A small LM on a few
minutes of CPU learns the text-to-speech alignment with it; with sequential positions it
babbles (egs/libritts/grpo/README.md).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from local_lib.data.text_units import TextUnits, load_text_units, save_text_units

if TYPE_CHECKING:
    from local_lib.data.speech_tokens import PromptPool
    from local_lib.models.soft_tokens import SoftRollout

LOG = logging.getLogger(__name__)
LAYOUT_FILE = "codec_lm_layout.json"
POSITION_SCHEMES = ("sequential", "text_aligned")
TOKENS_FILE = "tokens.txt"  # our own model's text units (with bpe.model for sentencepiece)
LLASA_SPEECH_START = "<|SPEECH_GENERATION_START|>"
LLASA_SPEECH_END = "<|SPEECH_GENERATION_END|>"
LLASA_TEXT_START = "<|TEXT_UNDERSTANDING_START|>"
LLASA_TEXT_END = "<|TEXT_UNDERSTANDING_END|>"
_MODEL_KEYS = {
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "max_position_embeddings", "tie_word_embeddings", "rms_norm_eps",
    "head_dim",
}  # fmt: skip


@dataclass(frozen=True)
class TokenLayout:
    """Where text, markers and speech live in the LM's vocabulary."""

    encode_text: Callable[[str], list[int]]
    speech_start_id: int
    speech_end_id: int
    speech_offset: int  # LM id of speech token 0; speech tokens are contiguous
    num_speech_tokens: int
    pad_id: int
    vocab_size: int
    text_sep_id: int | None = None  # between prompt text and target text (None: a space)
    emotions: tuple[str, ...] = ()  # emotion instruction tokens, right after the speech tokens

    @classmethod
    def for_text_units(
        cls, units: TextUnits, num_speech_tokens: int, emotions: Sequence[str] = ()
    ) -> TokenLayout:
        """Text ids as they are, then <speech start>, <speech end>, <text sep>, the speech ids
        and, for an emotion-controlled model, one id per emotion (none: the layout of a model
        without an emotion vocabulary, unchanged)."""
        n_text = units.vocab_size
        return cls(
            encode_text=units.encode,
            speech_start_id=n_text,
            speech_end_id=n_text + 1,
            text_sep_id=n_text + 2,
            speech_offset=n_text + 3,
            num_speech_tokens=num_speech_tokens,
            pad_id=units.pad_id,
            vocab_size=n_text + 3 + num_speech_tokens + len(emotions),
            emotions=tuple(emotions),
        )

    def emotion_id(self, emotion: str) -> int:
        """The LM id of an emotion instruction; an emotion the model has no token for is an
        error."""
        if emotion not in self.emotions:
            raise ValueError(f"emotion {emotion!r}: the model's emotions are {list(self.emotions)}")
        return self.speech_offset + self.num_speech_tokens + self.emotions.index(emotion)

    @classmethod
    def for_hf_tokenizer(
        cls,
        tokenizer: Any,
        speech_start: str = LLASA_SPEECH_START,
        speech_end: str = LLASA_SPEECH_END,
    ) -> TokenLayout:
        """Llasa layout: speech token N is ``<|s_N|>``; text is wrapped in the text markers
        when the tokenizer has them."""
        vocab = tokenizer.get_vocab()
        for marker in (speech_start, speech_end, "<|s_0|>"):
            if marker not in vocab:
                raise ValueError(f"tokenizer has no {marker!r} token; not a Llasa-style checkpoint")
        offset = vocab["<|s_0|>"]
        count = 0
        while vocab.get(f"<|s_{count}|>") == offset + count:
            count += 1
        wrap = LLASA_TEXT_START in vocab and LLASA_TEXT_END in vocab

        def encode_text(text: str) -> list[int]:
            ids = tokenizer.encode(text, add_special_tokens=False)
            return [vocab[LLASA_TEXT_START], *ids, vocab[LLASA_TEXT_END]] if wrap else ids

        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else vocab[speech_end]
        return cls(
            encode_text, vocab[speech_start], vocab[speech_end], offset, count, pad, len(tokenizer)
        )

    def speech_ids(self, tokens: Sequence[int] | torch.Tensor) -> list[int]:
        out = [int(t) for t in tokens]
        if out and not 0 <= min(out) <= max(out) < self.num_speech_tokens:
            raise ValueError(
                f"speech token outside [0, {self.num_speech_tokens}): {min(out)}..{max(out)}"
            )
        return [t + self.speech_offset for t in out]

    def allowed_after_start(self, device: torch.device | str) -> torch.Tensor:
        """Additive logit mask: after <speech start> only speech tokens and <speech end>."""
        mask = torch.full((self.vocab_size,), float("-inf"), device=device)
        mask[self.speech_offset : self.speech_offset + self.num_speech_tokens] = 0.0
        mask[self.speech_end_id] = 0.0
        return mask


@dataclass(frozen=True)
class Rollout:
    """Sampled completions, right-padded; ``mask`` covers speech tokens and the end marker."""

    completion_ids: torch.Tensor  # [B, T] LM ids
    mask: torch.Tensor  # [B, T] bool
    logprobs: torch.Tensor  # [B, T] under the sampling distribution before top-k/top-p
    has_eos: torch.Tensor  # [B] bool
    speech_tokens: list[torch.Tensor]  # codec token indices, end marker removed


class CodecLM:
    """A causal LM plus its token layout; everything the SFT, RL and synthesis stages call."""

    def __init__(
        self,
        model: LlamaForCausalLM,
        layout: TokenLayout,
        text_units: TextUnits | None = None,
        hf_tokenizer: Any | None = None,
        positions: str = "sequential",
        chars_per_token: float = 0.5,
    ) -> None:
        """Exactly one text tokenizer: our text units (``local_lib.data.text_units``) or a
        Llasa-style HF tokenizer.
        ``chars_per_token`` places the speech of a prompt-less input (``text_aligned`` only)."""
        if model.config.vocab_size < layout.vocab_size:
            raise ValueError(
                f"model vocab {model.config.vocab_size} < layout vocab {layout.vocab_size}"
            )
        if (text_units is None) == (hf_tokenizer is None):
            raise ValueError("give exactly one of text_units and hf_tokenizer")
        if positions not in POSITION_SCHEMES:
            raise ValueError(f"positions {positions!r}: expected one of {POSITION_SCHEMES}")
        if positions == "text_aligned" and layout.text_sep_id is None:
            raise ValueError("text_aligned positions need a layout with a text separator")
        if not chars_per_token > 0:
            raise ValueError(f"chars_per_token must be > 0, got {chars_per_token}")
        self.model, self.layout = model, layout
        self.text_units, self.hf_tokenizer = text_units, hf_tokenizer
        self.positions, self.chars_per_token = positions, float(chars_per_token)

    @classmethod
    def from_config(
        cls,
        model_cfg: Mapping[str, Any],
        text_units: TextUnits,
        num_speech_tokens: int,
        positions: str = "sequential",
        chars_per_token: float = 0.5,
        emotions: Sequence[str] = (),
    ) -> CodecLM:
        """A fresh small Llama sized by the YAML ``model`` section (unknown keys are an error);
        ``emotions``: the emotion instruction tokens of an emotion-controlled model."""
        unknown = sorted(set(model_cfg) - _MODEL_KEYS)
        if unknown:
            raise ValueError(
                f"codec_lm model: unknown key(s) {unknown}; known: {sorted(_MODEL_KEYS)}"
            )
        layout = TokenLayout.for_text_units(text_units, num_speech_tokens, emotions)
        config = LlamaConfig(
            vocab_size=layout.vocab_size,
            pad_token_id=layout.pad_id,
            bos_token_id=None,
            eos_token_id=layout.speech_end_id,
            attention_dropout=0.0,
            **model_cfg,
        )
        return cls(
            LlamaForCausalLM(config),
            layout,
            text_units,
            positions=positions,
            chars_per_token=chars_per_token,
        )

    @classmethod
    def from_pretrained(cls, path: str | Path) -> CodecLM:
        """Load our own saved model (``tokens.txt`` beside it) or a Llasa-style HF directory."""
        path = Path(path)
        model = LlamaForCausalLM.from_pretrained(path)
        if (path / TOKENS_FILE).exists():
            units = load_text_units(path)
            meta = json.loads((path / LAYOUT_FILE).read_text(encoding="utf-8"))
            layout = TokenLayout.for_text_units(
                units, int(meta["num_speech_tokens"]), meta.get("emotions", ())
            )
            return cls(
                model, layout, units,
                positions=meta["positions"], chars_per_token=meta["chars_per_token"],
            )  # fmt: skip
        hf_tokenizer = AutoTokenizer.from_pretrained(path)
        layout = TokenLayout.for_hf_tokenizer(hf_tokenizer)
        LOG.info("%s: Llasa-style checkpoint, %d speech tokens", path, layout.num_speech_tokens)
        return cls(model, layout, hf_tokenizer=hf_tokenizer)

    def save_pretrained(self, path: str | Path) -> None:
        """Written to a temporary sibling and renamed, so a half-written model is never loaded.
        A model loaded from a Llasa-style directory is saved in the same layout (with its HF
        tokenizer), so fine-tuned Llasa checkpoints load back through ``from_pretrained``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
        try:
            self.model.save_pretrained(tmp)
            if self.text_units is not None:
                save_text_units(self.text_units, tmp)
                meta = {
                    "num_speech_tokens": self.layout.num_speech_tokens,
                    "positions": self.positions,
                    "chars_per_token": self.chars_per_token,
                }
                if self.layout.emotions:
                    meta["emotions"] = list(self.layout.emotions)
                (tmp / LAYOUT_FILE).write_text(json.dumps(meta) + "\n", encoding="utf-8")
            else:
                self.hf_tokenizer.save_pretrained(tmp)
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def clone(self, frozen: bool = False) -> CodecLM:
        """The same layout and tokenizer with its own copy of the weights: a method's frozen
        reference (``frozen``: eval mode, no gradients) or another trainable copy."""
        out = copy.copy(self)
        out.model = copy.deepcopy(self.model)
        if frozen:
            out.model.eval().requires_grad_(False)
        return out

    def prompt_ids(
        self,
        text: str,
        prompt_text: str | None = None,
        prompt_speech: Sequence[int] | None = None,
        emotion: str | None = None,
    ) -> list[int]:
        """``text(prompt_text <sep> [<emotion>] text) <speech start> prompt_speech`` — what
        generation continues; without a separator id in the layout, a space joins the two
        texts. ``emotion``: the target's emotion instruction (emotion-controlled models)."""
        speech = self.layout.speech_ids(prompt_speech) if prompt_speech is not None else []
        sep = self.layout.text_sep_id
        target = self.layout.encode_text(text)
        if emotion is not None:
            target = [self.layout.emotion_id(emotion), *target]
        if not prompt_text:
            text_ids = target
        elif sep is None:
            text_ids = self.layout.encode_text(f"{prompt_text} {text}")
        else:
            text_ids = [*self.layout.encode_text(prompt_text), sep, *target]
        return [*text_ids, self.layout.speech_start_id, *speech]

    def pool_prompt_ids(self, pool: PromptPool, utt: str, prompt: str) -> list[int]:
        """Target ``utt`` of ``pool`` after speaker prompt ``prompt``, with the target's emotion
        instruction when the model has an emotion vocabulary (from the pool's ``utt2emo``)."""
        emotion = None
        if self.layout.emotions:
            if "emotion" not in pool.labels:
                raise ValueError(f"{pool.source}: an emotion-controlled LM needs utt2emo")
            emotion = pool.labels["emotion"][utt]
        return self.prompt_ids(pool.texts[utt], pool.texts[prompt], pool.tokens[prompt], emotion)

    def position_ids(
        self, prompts: Sequence[Sequence[int]], width: int, length: int
    ) -> torch.Tensor:
        """Positions of rows ``prompt + completion``, ``length`` wide, each prompt ending at
        column ``width`` (left-padded; pad columns get 0). ``text_aligned``: character i at
        i + 1, <speech start> at 0, speech token j at 1 + j * rate, with rate = (prompt
        characters + separator) / prompt speech tokens, or ``chars_per_token`` without a prompt."""
        rows = []
        for prompt in prompts:
            pad, n_after = width - len(prompt), length - width
            if self.positions == "sequential":
                rows.append([0.0] * pad + [float(i) for i in range(len(prompt) + n_after)])
                continue
            start, _, rate = self._prompt_rate(prompt)
            n_prompt_speech = len(prompt) - start - 1
            speech = [1.0 + j * rate for j in range(n_prompt_speech + n_after)]
            rows.append([0.0] * pad + [i + 1.0 for i in range(start)] + [0.0] + speech)
        out = torch.tensor(rows, device=self.model.device)
        return out.long() if self.positions == "sequential" else out

    def _prompt_rate(self, prompt: Sequence[int]) -> tuple[int, int, float]:
        """(index of <speech start>, index of the first target character, characters per
        speech token): the prompt's own rate when it has prompt text and speech, else
        ``chars_per_token``."""
        prompt = list(prompt)
        start = prompt.index(self.layout.speech_start_id)
        n_prompt_speech = len(prompt) - start - 1
        sep = self.layout.text_sep_id
        if sep is None or sep not in prompt[:start]:
            return start, 0, self.chars_per_token
        text_from = prompt.index(sep) + 1
        return (
            start,
            text_from,
            text_from / n_prompt_speech if n_prompt_speech else self.chars_per_token,
        )

    def expected_speech_length(self, prompt: Sequence[int]) -> float:
        """Speech tokens the target text needs at the prompt's rate (character layouts only)."""
        if self.layout.text_sep_id is None:
            raise ValueError(
                "expected speech length needs a character layout with a text separator"
            )
        start, text_from, rate = self._prompt_rate(prompt)
        return max(start - text_from, 1) / rate

    def zero_shot_prompt_ids(
        self, utts: Sequence[str], pool: PromptPool, seed: int
    ) -> dict[str, list[int]]:
        """Each target's text after its speaker prompt's text, then the prompt's speech tokens
        (the prompt picked from ``pool`` by ``pick_prompts``, so every stage agrees on it; in a
        seed-tts-eval list, each utterance's own prompt audio and its transcript). An
        emotion-controlled model gets a prompt of the speaker in another emotion and the
        target's emotion instruction, so the emotion cannot be copied from the prompt."""
        if pool.prompt_texts:
            own = pool.prompt_texts
            return {u: self.prompt_ids(pool.texts[u], own[u], pool.tokens[u]) for u in utts}
        match = "other_emotion" if self.layout.emotions else "speaker"
        prompts = pool.pick(utts, seed, match=match)
        return {utt: self.pool_prompt_ids(pool, utt, prompt) for utt, prompt in prompts.items()}

    def training_batch(
        self,
        prompts: Sequence[Sequence[int]],
        targets: Sequence[Sequence[int]],
        loss_on_prompt_speech: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Right-padded ``prompt + target speech + <end>`` with labels on the target part, and
        on the prompt's speech tokens too if asked (they are speech read from the prompt text,
        so they teach the text-to-speech alignment as well, at no extra compute)."""
        rows, labels = [], []
        for prompt, target in zip(prompts, targets, strict=True):
            completion = [*self.layout.speech_ids(target), self.layout.speech_end_id]
            rows.append([*prompt, *completion])
            context = [-100] * len(prompt)
            if loss_on_prompt_speech:
                start = list(prompt).index(self.layout.speech_start_id) + 1
                context[start:] = prompt[start:]
            labels.append(context + completion)
        width = max(len(r) for r in rows)
        pad = self.layout.pad_id
        positions = [
            self.position_ids([p], len(p), len(p) + len(t) + 1)[0].tolist()
            for p, t in zip(prompts, targets)
        ]
        return {
            "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
            "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
            "labels": torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels]),
            "position_ids": torch.tensor([q + [0] * (width - len(q)) for q in positions]),
        }

    def sft_loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        device = self.model.device
        return self.model(**{k: v.to(device) for k, v in batch.items()}).loss

    def _left_pad(self, prompts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.layout.pad_id] * (width - len(p)) + list(p) for p in prompts])
        attn = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        device = self.model.device
        return ids.to(device), attn.to(device)

    def _next_logprobs(self, logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """The policy's distribution over the next speech token: restricted, temperature-scaled."""
        restricted = logits.float() / temperature + self.layout.allowed_after_start(logits.device)
        return torch.log_softmax(restricted, dim=-1)

    @torch.no_grad()
    def sample(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Rollout:
        """KV-cache ancestral sampling of speech tokens until <speech end> or the length limit."""
        if temperature <= 0 or not 0 < top_p <= 1 or top_k < 0 or max_new_tokens < 1:
            raise ValueError(
                "need temperature > 0, 0 < top_p <= 1, top_k >= 0, max_new_tokens >= 1"
            )
        ids, attn = self._left_pad(prompts)
        batch, width = ids.shape
        positions = self.position_ids(prompts, width, width + max_new_tokens)
        out = self.model(
            input_ids=ids, attention_mask=attn, position_ids=positions[:, :width], use_cache=True
        )
        past, logits = out.past_key_values, out.logits[:, -1]
        done = torch.zeros(batch, dtype=torch.bool, device=ids.device)
        tokens, logps, masks = [], [], []
        for step in range(max_new_tokens):
            logp = self._next_logprobs(logits, temperature)
            choice = _sample(_filter_top_k_top_p(logp, top_k, top_p), generator)
            tokens.append(torch.where(done, self.layout.pad_id, choice))
            logps.append(torch.where(done, 0.0, logp.gather(1, choice[:, None])[:, 0]))
            masks.append(~done)
            done = done | (choice == self.layout.speech_end_id)
            if bool(done.all()):
                break
            attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
            out = self.model(
                input_ids=tokens[-1][:, None], attention_mask=attn,
                position_ids=positions[:, width + step : width + step + 1],
                past_key_values=past, use_cache=True,
            )  # fmt: skip
            past, logits = out.past_key_values, out.logits[:, -1]
        completion = torch.stack(tokens, dim=1)
        mask = torch.stack(masks, dim=1)
        speech = [
            row[m & (row != self.layout.speech_end_id)] - self.layout.speech_offset
            for row, m in zip(completion, mask, strict=True)
        ]
        return Rollout(completion, mask, torch.stack(logps, dim=1), done, [s.cpu() for s in speech])

    def completion_logprobs(
        self,
        prompts: Sequence[Sequence[int]],
        completion_ids: torch.Tensor,
        mask: torch.Tensor,
        temperature: float = 1.0,
        return_logits: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher-forced per-token log-probs of given completions (policy, old or reference),
        under the same restricted, temperature-scaled distribution that ``sample`` reports."""
        ids, attn = self._left_pad(prompts)
        device = ids.device
        completion_ids, mask = completion_ids.to(device), mask.to(device)
        full_attn = torch.cat([attn, mask.long()], dim=1)
        positions = self.position_ids(prompts, ids.shape[1], full_attn.shape[1])
        logits = self.model(
            input_ids=torch.cat([ids, completion_ids], dim=1),
            attention_mask=full_attn,
            position_ids=positions,
        ).logits[:, ids.shape[1] - 1 : -1]
        logp_all = self._next_logprobs(logits, temperature)
        logp = logp_all.gather(2, completion_ids[..., None])[..., 0].masked_fill(~mask.bool(), 0.0)
        if not return_logits:
            return logp, None
        # entropy needs finite logits: disallowed ids get a large negative value instead of -inf
        return logp, logp_all.clamp(min=-1e4)

    def soft_tokens_teacher_forced(
        self,
        prompts: Sequence[Sequence[int]],
        completion_ids: torch.Tensor,
        mask: torch.Tensor,
        tau: float = 1.0,
        temperature: float = 1.0,
        straight_through: bool = False,
        generator: torch.Generator | None = None,
        given_completion: bool = False,
    ) -> SoftRollout:
        """Gumbel-softmax soft tokens at given completions' positions, differentiable into the
        weights (DiffRO, HPRO); see ``local_lib.models.soft_tokens``."""
        from local_lib.models.soft_tokens import soft_tokens_teacher_forced

        return soft_tokens_teacher_forced(
            self, prompts, completion_ids, mask, tau, temperature, straight_through, generator,
            given_completion,
        )  # fmt: skip

    def soft_sample(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        tau: float = 1.0,
        temperature: float = 1.0,
        straight_through: bool = False,
        generator: torch.Generator | None = None,
    ) -> SoftRollout:
        """Free-running rollout fed its own soft tokens' embeddings, differentiable into the
        weights; see ``local_lib.models.soft_tokens``."""
        from local_lib.models.soft_tokens import soft_sample

        return soft_sample(
            self, prompts, max_new_tokens, tau, temperature, straight_through, generator
        )


def _filter_top_k_top_p(logp: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Log-probs with everything outside the top-k / nucleus set to -inf (top token always kept)."""
    if top_k > 0:
        kth = torch.topk(logp, min(top_k, logp.shape[-1]), dim=-1).values[:, -1:]
        logp = logp.masked_fill(logp < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logp, order = torch.sort(logp, dim=-1, descending=True)
        mass_before = sorted_logp.exp().cumsum(-1) - sorted_logp.exp()
        drop_sorted = mass_before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        logp = logp.masked_fill(drop, float("-inf"))
    return logp


def _sample(logp: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.multinomial(torch.softmax(logp, dim=-1), 1, generator=generator)[:, 0]
