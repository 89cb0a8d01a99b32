"""The emotion-controlled codec LM that HPRO starts from: an emotion token before the target text
and a prompt of the same speaker in another emotion, at SFT, in the RL prompts and at synthesis;
a model without an emotion vocabulary keeps its layout and prompts (issue 17, item 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from local_lib.bin.train_codec_lm import CodecLMConfig, build_lm
from local_lib.config import load_config
from local_lib.data.speech_tokens import PromptPool
from local_lib.data.text_tokenizer import CharTokenizer
from local_lib.models.codec_lm import LAYOUT_FILE, CodecLM
from local_lib.rl.rollout import PromptSource

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
    "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 128,
}  # fmt: skip
TEXTS = {"a_1": "ab", "a_2": "ba", "a_3": "bb", "b_1": "aa", "b_2": "ab"}
EMOTION = {"a_1": "Sad", "a_2": "Angry", "a_3": "Sad", "b_1": "Angry", "b_2": "Sad"}
EMOTIONS = ("Angry", "Sad")


def _pool(labels: bool = True) -> PromptPool:
    utt2spk = {u: u[0] for u in TEXTS}
    tokens = {u: [i % 4, (i + 1) % 4] for i, u in enumerate(TEXTS)}
    extra = {"emotion": dict(EMOTION)} if labels else {}
    return PromptPool(dict(TEXTS), utt2spk, tokens, "fake", {"speaker": utt2spk, **extra})


def _lm(emotions=EMOTIONS) -> CodecLM:
    torch.manual_seed(0)
    return CodecLM.from_config(TINY, CharTokenizer.build(TEXTS.values()), 4, emotions=emotions)


def test_the_emotion_ids_follow_the_speech_ids_and_a_plain_layout_is_unchanged():
    plain, emo = _lm(()).layout, _lm().layout
    n_text = CharTokenizer.build(TEXTS.values()).vocab_size
    assert plain.vocab_size == n_text + 3 + 4 and plain.emotions == ()
    assert emo.vocab_size == plain.vocab_size + 2
    assert [emo.emotion_id(e) for e in EMOTIONS] == [n_text + 7, n_text + 8]
    with pytest.raises(ValueError, match="Happy"):
        emo.emotion_id("Happy")
    with pytest.raises(ValueError, match="emotions are"):
        plain.emotion_id("Sad")
    # nothing but speech and the end marker may follow <speech start>: no emotion id is sampled
    allowed = emo.allowed_after_start("cpu")
    assert allowed[[emo.emotion_id(e) for e in EMOTIONS]].isinf().all()


def test_prompt_ids_by_hand():
    lm = _lm()
    lay, enc = lm.layout, lm.layout.encode_text
    ids = lm.prompt_ids("ab", "ba", [1, 2], emotion="Sad")
    sad, s = lay.emotion_id("Sad"), lay.speech_offset
    assert ids == [*enc("ba"), lay.text_sep_id, sad, *enc("ab"), lay.speech_start_id, s + 1, s + 2]
    assert lm.prompt_ids("ab", "ba", [1, 2]) == [
        *enc("ba"), lay.text_sep_id, *enc("ab"), lay.speech_start_id, s + 1, s + 2
    ]  # fmt: skip


def test_zero_shot_prompts_take_another_emotion_and_the_target_emotion():
    lm, pool = _lm(), _pool()
    prompts = lm.zero_shot_prompt_ids(sorted(TEXTS), pool, seed=3)
    picked = pool.pick(sorted(TEXTS), 3, match="other_emotion")
    for utt, ids in prompts.items():
        other = picked[utt]
        assert pool.utt2spk[other] == pool.utt2spk[utt] and EMOTION[other] != EMOTION[utt]
        assert ids == lm.prompt_ids(TEXTS[utt], TEXTS[other], pool.tokens[other], EMOTION[utt])
    with pytest.raises(ValueError, match="utt2emo"):
        lm.pool_prompt_ids(_pool(labels=False), "a_1", "a_2")


def test_a_model_without_emotions_prompts_as_before():
    lm, pool = _lm(()), _pool()
    picked = pool.pick(sorted(TEXTS), 3)  # any utterance of the speaker
    want = {u: lm.prompt_ids(TEXTS[u], TEXTS[p], pool.tokens[p]) for u, p in picked.items()}
    assert lm.zero_shot_prompt_ids(sorted(TEXTS), pool, seed=3) == want


def test_the_emotions_survive_save_and_load_and_an_old_layout_loads(tmp_path):
    _lm().save_pretrained(tmp_path / "emo")
    assert CodecLM.from_pretrained(tmp_path / "emo").layout.emotions == EMOTIONS
    _lm(()).save_pretrained(tmp_path / "plain")
    meta = json.loads((tmp_path / "plain" / LAYOUT_FILE).read_text())
    assert "emotions" not in meta  # a model without emotions writes the layout file as before
    assert CodecLM.from_pretrained(tmp_path / "plain").layout.emotions == ()


def test_the_rl_prompts_carry_the_target_emotion():
    lm, pool = _lm(), _pool()
    source = PromptSource(lm, pool, seed=1, per_batch=3, match="other_emotion")
    drawn = source.draw(torch.Generator().manual_seed(0))
    for utt, ids in zip(drawn.utts, drawn.prompt_ids, strict=True):
        assert lm.layout.emotion_id(EMOTION[utt]) in ids
        assert ids == lm.pool_prompt_ids(pool, utt, source.prompt_of[utt])


def test_sft_builds_the_emotion_vocabulary_from_the_training_labels():
    conf = CodecLMConfig(model=TINY, emotion_instruction=True)
    assert build_lm(conf, _pool(), 4).layout.emotions == EMOTIONS
    assert build_lm(CodecLMConfig(model=TINY), _pool(), 4).layout.emotions == ()
    with pytest.raises(ValueError, match="utt2emo"):
        build_lm(conf, _pool(labels=False), 4)
    with pytest.raises(ValueError, match="pretrained"):
        CodecLMConfig(pretrained="/x", emotion_instruction=True)


@pytest.mark.parametrize("size", ["", "_mini", "_debug"])
def test_the_esd_codec_lm_configs_are_the_shared_ones_with_the_emotion_instruction(size):
    conf = REPO / "egs/TEMPLATE/conf"
    esd = (conf / f"codec_lm_esd{size}.yaml").read_text()
    assert esd == (conf / f"codec_lm{size}.yaml").read_text() + "emotion_instruction: true\n"
    assert load_config(conf / f"codec_lm_esd{size}.yaml", CodecLMConfig).emotion_instruction
