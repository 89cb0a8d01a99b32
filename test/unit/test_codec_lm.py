"""Codec LM: token layout, SFT batch, KV-cache sampling vs teacher forcing, Llasa-style loading."""

import math
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.codec_lm import CodecLM, _filter_top_k_top_p

TINY = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
}


def _small_lm(num_speech: int = 12, positions: str = "sequential") -> CodecLM:
    torch.manual_seed(0)
    return CodecLM.from_config(
        TINY, CharTokenizer.build(["ab c"]), num_speech, positions=positions, chars_per_token=0.5
    )


def test_layout_and_prompt_ids() -> None:
    lm = _small_lm()
    # text vocab: <pad> <unk> <space> a b c -> 6 ids; start 6, end 7, sep 8, speech k -> 9 + k
    layout = lm.layout
    assert (layout.speech_start_id, layout.speech_end_id, layout.text_sep_id) == (6, 7, 8)
    assert layout.speech_offset == 9
    assert lm.layout.vocab_size == 6 + 3 + 12 == lm.model.config.vocab_size
    assert lm.prompt_ids("ba") == [4, 3, 6]
    # zero-shot: prompt text <sep> target text, <start>, prompt speech
    assert lm.prompt_ids("c", prompt_text="a", prompt_speech=[0, 11]) == [3, 8, 5, 6, 9, 20]
    with pytest.raises(ValueError, match="speech token outside"):
        lm.prompt_ids("a", prompt_speech=[12])


def test_training_batch_labels_only_on_target() -> None:
    lm = _small_lm()
    batch = lm.training_batch([[3, 6], [4, 5, 6]], [[1, 2], [0]])
    assert batch["input_ids"].tolist() == [[3, 6, 10, 11, 7], [4, 5, 6, 9, 7]]
    assert batch["labels"].tolist() == [[-100, -100, 10, 11, 7], [-100, -100, -100, 9, 7]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
    lm2 = lm.training_batch([[3, 6]], [[1, 2, 3]])
    assert lm2["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 1]]


def test_text_aligned_positions_by_hand() -> None:
    lm = _small_lm(positions="text_aligned")
    # prompt "ab" <sep> target "c": 3 characters + sep, two prompt speech tokens
    # -> rate (2 + 1) / 2 = 1.5; chars at 1..4, <start> at 0, speech j at 1 + 1.5 j
    prompt = lm.prompt_ids("c", prompt_text="ab", prompt_speech=[0, 1])
    assert prompt == [3, 4, 8, 5, 6, 9, 10]
    pos = lm.position_ids([prompt], width=len(prompt), length=len(prompt) + 2)
    assert pos.dtype == torch.float32
    assert pos.tolist() == [[1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 2.5, 4.0, 5.5]]
    # no prompt: chars_per_token 0.5; left padding by two gets position 0
    pos = lm.position_ids([lm.prompt_ids("ab")], width=5, length=7)
    assert pos.tolist() == [[0.0, 0.0, 1.0, 2.0, 0.0, 1.0, 1.5]]
    batch = lm.training_batch([prompt], [[3]])
    assert batch["position_ids"].tolist() == [[1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 2.5, 4.0, 5.5]]
    sequential = _small_lm().position_ids([lm.prompt_ids("ab")], width=5, length=7)
    assert sequential.dtype == torch.int64 and sequential.tolist() == [[0, 0, 0, 1, 2, 3, 4]]


@pytest.mark.parametrize("positions", ["sequential", "text_aligned"])
def test_sft_learns_a_fixed_utterance(positions: str) -> None:
    lm = _small_lm(positions=positions)
    batch = lm.training_batch([lm.prompt_ids("abc")], [[3, 1, 4, 1, 5, 9]])
    opt = torch.optim.Adam(lm.model.parameters(), lr=1e-2)
    first = lm.sft_loss(batch).item()
    for _ in range(60):
        opt.zero_grad()
        loss = lm.sft_loss(batch)
        loss.backward()
        opt.step()
    assert first > math.log(12) * 0.8 and loss.item() < 0.1 * first
    lm.model.eval()
    out = lm.sample([lm.prompt_ids("abc")], max_new_tokens=10, temperature=0.05)
    assert out.speech_tokens[0].tolist() == [3, 1, 4, 1, 5, 9] and bool(out.has_eos[0])


@pytest.mark.parametrize("positions", ["sequential", "text_aligned"])
def test_sampling_logprobs_match_teacher_forcing(positions: str) -> None:
    lm = _small_lm(positions=positions)
    lm.model.eval()
    prompts = [lm.prompt_ids("abc"), lm.prompt_ids("a", prompt_text="c b", prompt_speech=[2, 3])]
    gen = torch.Generator().manual_seed(1)
    out = lm.sample(prompts, max_new_tokens=15, temperature=0.9, top_k=8, generator=gen)
    b, t = out.completion_ids.shape
    assert b == 2 and t <= 15 and out.logprobs.shape == out.mask.shape == (b, t)
    for row, speech, mask in zip(out.completion_ids, out.speech_tokens, out.mask, strict=True):
        assert speech.min() >= 0 and speech.max() < 12
        assert int(mask.sum()) in (len(speech), len(speech) + 1)  # + end marker when present
    tf, logits = lm.completion_logprobs(
        prompts, out.completion_ids, out.mask, 0.9, return_logits=True
    )
    torch.testing.assert_close(tf, out.logprobs, atol=1e-4, rtol=1e-4)
    assert logits.shape == (b, t, lm.layout.vocab_size)
    again = lm.sample(prompts, 15, 0.9, top_k=8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.completion_ids, out.completion_ids)


def test_top_k_top_p_filter() -> None:
    logp = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(_filter_top_k_top_p(logp, top_k=2, top_p=1.0))
    assert kept.tolist() == [[True, True, False, False]]
    # nucleus 0.7: mass before each sorted token 0, .5, .8, .95 -> keep the first two
    kept = torch.isfinite(_filter_top_k_top_p(logp, top_k=0, top_p=0.7))
    assert kept.tolist() == [[True, True, False, False]]


def test_save_and_reload_small_model(tmp_path: Path) -> None:
    lm = _small_lm(positions="text_aligned")
    lm.save_pretrained(tmp_path / "lm")
    again = CodecLM.from_pretrained(tmp_path / "lm")
    assert again.layout.speech_offset == lm.layout.speech_offset
    assert (again.positions, again.chars_per_token) == ("text_aligned", 0.5)
    ids = torch.tensor([lm.prompt_ids("abc")])
    torch.testing.assert_close(again.model(ids).logits, lm.model(ids).logits)


def _llasa_style_dir(path: Path, num_speech: int = 16) -> None:
    words = ["[UNK]", "[PAD]", "hello", "world", "the", "<|TEXT_UNDERSTANDING_START|>",
             "<|TEXT_UNDERSTANDING_END|>", "<|SPEECH_GENERATION_START|>",
             "<|SPEECH_GENERATION_END|>"] + [f"<|s_{i}|>" for i in range(num_speech)]  # fmt: skip
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]")
    tok.save_pretrained(path)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(words), **TINY)
    LlamaForCausalLM(cfg).save_pretrained(path)


def test_loads_and_samples_llasa_style_checkpoint(tmp_path: Path) -> None:
    _llasa_style_dir(tmp_path / "llasa")
    lm = CodecLM.from_pretrained(tmp_path / "llasa")
    assert (lm.layout.speech_offset, lm.layout.num_speech_tokens) == (9, 16)
    assert lm.prompt_ids("hello world") == [5, 2, 3, 6, 7]
    assert lm.prompt_ids("the", prompt_text="hello", prompt_speech=[0, 15]) == [
        5,
        2,
        4,
        6,
        7,
        9,
        24,
    ]
    lm.model.eval()
    prompts = [lm.prompt_ids("hello world"), lm.prompt_ids("the")]
    out = lm.sample(
        prompts, max_new_tokens=6, top_p=0.9, generator=torch.Generator().manual_seed(0)
    )
    assert all(0 <= int(s.min()) and int(s.max()) < 16 for s in out.speech_tokens if len(s))
    tf, _ = lm.completion_logprobs(prompts, out.completion_ids, out.mask)
    torch.testing.assert_close(tf, out.logprobs, atol=1e-4, rtol=1e-4)
    lm.save_pretrained(tmp_path / "copy")  # a fine-tuned Llasa checkpoint keeps its layout
    again = CodecLM.from_pretrained(tmp_path / "copy")
    assert again.prompt_ids("hello world") == [5, 2, 3, 6, 7] and again.text_units is None


def test_rejects_non_llasa_tokenizer_and_bad_config(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown key"):
        CodecLM.from_config({"hidden": 3}, CharTokenizer.build(["a"]), 4)
    with pytest.raises(ValueError, match="positions 'diagonal'"):
        CodecLM.from_config(TINY, CharTokenizer.build(["a"]), 4, positions="diagonal")
    core = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]").save_pretrained(tmp_path)
    LlamaForCausalLM(LlamaConfig(vocab_size=2, **TINY)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not a Llasa-style"):
        CodecLM.from_pretrained(tmp_path)


@pytest.mark.parametrize("name", ["codec_lm.yaml", "codec_lm_mini.yaml"])
def test_template_configs_build(name: str) -> None:
    import yaml

    path = Path(__file__).resolve().parents[2] / "egs" / "TEMPLATE" / "conf" / name
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert cfg["pretrained"] is None
    with torch.device("meta"):
        lm = CodecLM.from_config(cfg["model"], CharTokenizer.build(["abc"]), 64)
    assert lm.model.config.num_hidden_layers == cfg["model"]["num_hidden_layers"]


def test_training_batch_can_label_prompt_speech() -> None:
    lm = _small_lm()
    prompt = lm.prompt_ids("c", prompt_text="a", prompt_speech=[0, 2])  # [3, 8, 5, 6, 9, 11]
    batch = lm.training_batch([prompt], [[1]], loss_on_prompt_speech=True)
    assert batch["input_ids"].tolist() == [[3, 8, 5, 6, 9, 11, 10, 7]]
    assert batch["labels"].tolist() == [[-100, -100, -100, -100, 9, 11, 10, 7]]
    assert lm.training_batch([prompt], [[1]])["labels"].tolist() == [[-100] * 6 + [10, 7]]


def test_expected_speech_length_from_the_prompt_rate() -> None:
    lm = _small_lm(positions="text_aligned")
    # prompt "ab" + sep = 3 characters in 2 tokens -> 1.5 chars/token; target "c b" = 3 chars
    assert lm.expected_speech_length(lm.prompt_ids("c b", "ab", [0, 1])) == pytest.approx(2.0)
    assert lm.expected_speech_length(lm.prompt_ids("ab")) == pytest.approx(4.0)  # 0.5 chars/token
