"""Text units (local_lib.data.text_units): stage 2's sentencepiece model on the mini text, the
token-list record, and the same ids in every model that reads text."""

from __future__ import annotations

import dataclasses
import io

import pytest
import sentencepiece as spm
import torch

from local_lib.bin import make_token_list as make_token_list_cli
from local_lib.data.kaldi_dir import write_kv
from local_lib.data.mini.libritts import libritts_sentences
from local_lib.data.text_tokenizer import CharTokenizer, normalize_text
from local_lib.data.text_units import (
    MODEL_FILE,
    TOKENS_FILE,
    SentencePieceUnits,
    TokenListConfig,
    make_token_list,
    read_token_list,
    units_for,
)
from local_lib.eval import text_norm
from local_lib.models.asr_units import SOS_EOS, AsrUnits
from local_lib.models.codec_lm import CodecLM
from local_lib.models.espnet_asr import EspnetASRConfig, EspnetRewardASR, build_espnet_asr
from local_lib.models.evaluator_nets import EvaluatorNetConfig
from local_lib.models.evaluators import build_evaluator, load_evaluator
from local_lib.models.token2text import Token2Text, Token2TextConfig, load_token2text

BPE100 = TokenListConfig(token_type="bpe", nbpe=100)
TINY_LM = {
    "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
    "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 128,
}  # fmt: skip


@pytest.fixture(scope="module")
def mini() -> dict[str, list[str]]:
    """mini_libritts's sentences (the corpus's own text, without synthesising it)."""
    return libritts_sentences(0)


@pytest.fixture(scope="module")
def bpe(mini) -> SentencePieceUnits:
    return SentencePieceUnits.train(mini["train-clean-100"], BPE100)


@pytest.mark.parametrize("bpemode", ["unigram", "bpe"])
def test_round_trip_on_the_mini_text(mini, bpemode):
    units = SentencePieceUnits.train(mini["train-clean-100"], TokenListConfig("bpe", 100, bpemode))
    assert units.vocab_size == 100
    assert units.tokens[:2] == ["<pad>", "<unk>"]
    unseen = mini["dev-clean"] + mini["test-clean"]  # sentences it was not trained on
    for text in unseen:
        ids = units.encode(text)
        assert units.unk_id not in ids and units.pad_id not in ids
        assert units.decode(ids) == normalize_text(text)
    # pieces, not characters: the same text takes fewer units
    chars = CharTokenizer.build(mini["train-clean-100"])
    assert sum(map(len, map(units.encode, unseen))) < 0.8 * sum(
        map(len, map(chars.encode, unseen))
    )


def test_unknown_characters_become_unk_and_the_rest_survives(bpe, mini):
    assert "ж" not in "".join(mini["train-clean-100"])
    ids = bpe.encode("the dog жж sat")
    assert ids.count(bpe.unk_id) == 1  # a run of unknown characters is one <unk>
    # sentencepiece's visible unknown mark
    assert bpe.decode(ids).split() == ["the", "dog", "\u2047", "sat"]
    asr = AsrUnits(bpe)
    assert asr.decode(asr.encode("The dog жж sat.")) == "the dog sat"


def test_user_symbols_are_kept_whole(mini):
    conf = dataclasses.replace(BPE100, user_symbols=("<laugh>", "[noise]"))
    units = SentencePieceUnits.train(mini["train-clean-100"], conf)
    laugh, noise = units.tokens.index("<laugh>"), units.tokens.index("[noise]")
    ids = units.encode("The dog <LAUGH> sat[noise]on a mat")
    assert ids.count(laugh) == 1 and ids.count(noise) == 1
    assert units.decode(ids) == "the dog <laugh> sat[noise]on a mat"
    with pytest.raises(ValueError, match="single non-empty words"):
        SentencePieceUnits.train(["a b"], dataclasses.replace(BPE100, user_symbols=("a b",)))


def test_ids_are_the_pieces_and_survive_save_and_load(bpe, tmp_path):
    bpe.save(tmp_path)
    again = SentencePieceUnits.load(tmp_path)
    assert again.tokens == bpe.tokens
    assert (tmp_path / TOKENS_FILE).read_text().splitlines() == bpe.tokens
    text = "the small dog sat on a mat"
    assert again.encode(text) == bpe.encode(text)
    assert "".join(bpe.surface(i) for i in bpe.encode(text)).strip() == text
    with pytest.raises(ValueError, match="outside vocabulary"):
        bpe.decode([100])


def test_a_model_without_pad_0_and_unk_1_is_refused(mini):
    """sentencepiece's own default layout (unk 0, bos 1, eos 2, no pad) would shift every id."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(mini["dev-clean"]), model_writer=model, vocab_size=60,
        minloglevel=2,
    )  # fmt: skip
    with pytest.raises(ValueError, match="<pad> at id 0 and <unk> at id 1"):
        SentencePieceUnits(model.getvalue())


def test_token_list_is_made_once_and_remade_when_its_settings_change(mini, tmp_path):
    texts, out = mini["train-clean-100"], tmp_path / "token_list"
    assert make_token_list(BPE100, texts, out, "data/train/text")
    first = (out / MODEL_FILE).read_bytes()
    stamp = (out / MODEL_FILE).stat().st_mtime_ns
    assert not make_token_list(BPE100, texts, out, "data/train/text")  # up to date
    assert (out / MODEL_FILE).stat().st_mtime_ns == stamp
    assert make_token_list(dataclasses.replace(BPE100, nbpe=80), texts, out, "data/train/text")
    assert read_token_list(out).vocab_size == 80 and (out / MODEL_FILE).read_bytes() != first
    assert make_token_list(BPE100, texts[:-1], out, "data/train/text")  # the text changed
    assert make_token_list(TokenListConfig(), texts, out, "data/train/text")
    assert read_token_list(out) is None  # char: each model keeps its own characters
    assert not (out / MODEL_FILE).exists() and not (out / TOKENS_FILE).exists()


def test_too_small_a_vocabulary_names_the_text_and_nbpe(mini, tmp_path):
    with pytest.raises(ValueError, match=r"data/train/text: sentencepiece with nbpe=10: .*"):
        make_token_list(
            dataclasses.replace(BPE100, nbpe=10), mini["dev-clean"], tmp_path, "data/train/text"
        )
    assert not (tmp_path / "config.yaml").exists()


def test_read_token_list_without_stage_2_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no token list here"):
        read_token_list(tmp_path)


def test_cli_overrides_the_config(mini, tmp_path, capsys):
    text = tmp_path / "text"
    write_kv(text, {f"u{i:04d}": t for i, t in enumerate(mini["train-clean-100"])})
    conf = tmp_path / "token_list.yaml"
    conf.write_text("token_type: char\n")
    argv = ["--config", str(conf), "--text", str(text), "--out-dir", str(tmp_path / "tl")]
    make_token_list_cli.main([*argv, "--token-type", "bpe", "--nbpe", "60"])
    assert read_token_list(tmp_path / "tl").vocab_size == 60
    make_token_list_cli.main([*argv, "--token-type", "bpe", "--nbpe", "60"])
    assert capsys.readouterr().out.splitlines()[-1].endswith("bpe (unigram, 60) units of "
                                                             f"{text}, up to date")  # fmt: skip


def test_char_units_are_what_each_model_built_before(mini, tmp_path):
    """--token_type char changes nothing: the LM's and the ASRs' characters of their own text."""
    texts = mini["train-clean-100"]
    make_token_list(TokenListConfig(), texts, tmp_path, "text")
    assert units_for(tmp_path, texts).tokens == CharTokenizer.build(texts).tokens
    before = [*CharTokenizer.build(text_norm.normalize_text(t) for t in texts).tokens, SOS_EOS]
    assert AsrUnits.from_texts(texts, tmp_path).tokens == before
    assert AsrUnits.from_texts(texts).tokens == before
    assert AsrUnits.from_state({"tokens": before}).tokens == before  # checkpoints made before


def test_the_same_text_gives_the_same_ids_in_every_model(mini, tmp_path):
    """The codec LM, the reward ASR, the CTC evaluator/reward ASR and Token2Text all read the
    stage-2 list, and keep reading it after a save and load."""
    texts = mini["train-clean-100"]
    token_list = tmp_path / "token_list"
    make_token_list(BPE100, texts, token_list, "data/train/text")
    torch.manual_seed(0)
    lm = CodecLM.from_config(TINY_LM, units_for(token_list, texts), 8)
    lm.save_pretrained(tmp_path / "lm")
    lm = CodecLM.from_pretrained(tmp_path / "lm")

    units = AsrUnits.from_texts(texts, token_list)
    cfg = EspnetASRConfig(d_model=16, heads=2, ffn=32, encoder_layers=1, decoder_layers=1)
    torch.save(EspnetRewardASR(build_espnet_asr(units, cfg), units, cfg).checkpoint(),
               tmp_path / "reward_asr.pt")  # fmt: skip
    reward_asr = EspnetRewardASR.from_checkpoint(tmp_path / "reward_asr.pt")

    net_cfg = EvaluatorNetConfig(kind="asr", n_mels=16, channels=8, conv_layers=1, embed_dim=8)
    state = {"kind": "evaluator", "net_config": dataclasses.asdict(net_cfg),
             "mel_config": {"n_mels": 16}, **units.state()}  # fmt: skip
    state["model"] = build_evaluator(state).net.state_dict()
    torch.save(state, tmp_path / "eval_asr.pt")
    evaluator = load_evaluator(tmp_path / "eval_asr.pt")

    t2t_cfg = Token2TextConfig(embed_dim=4, channels=4, conv_layers=0, upsample=1, dropout=0.0)
    torch.save(Token2Text.build(t2t_cfg, 8, units, {}).state(), tmp_path / "t2t.pt")
    token2text = load_token2text(tmp_path / "t2t.pt")

    shared = read_token_list(token_list)
    for text in ["the small dog sat on a mat", *mini["test-clean"][:5]]:
        plain = text_norm.normalize_text(text)  # what WER is computed on
        ids = shared.encode(plain)
        assert lm.layout.encode_text(plain) == ids
        assert reward_asr.text_to_ids(plain) == ids
        assert evaluator.units.encode(plain) == ids
        assert token2text.units.encode(plain) == ids
        # and scoring reads words back, whatever the units
        assert evaluator.units.decode(ids) == plain
        assert reward_asr.ids_to_text(ids) == plain
