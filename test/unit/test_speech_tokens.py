"""Speech-token files (round trip, C order, errors naming file:line:utt) and the stage-2 tools."""

from pathlib import Path

import kaldiio
import pytest
import torch
from codec_lm_data import make_token_set, utterance_ids, write_feats

from local_lib.bin import dump_speech_tokens, train_speech_tokenizer
from local_lib.data.speech_tokens import (
    PromptPool,
    SpeechTokensError,
    read_speech_tokens,
    write_speech_tokens,
)
from local_lib.models.speech_tokenizer import load_speech_tokenizer

FEATS_YAML = Path(__file__).resolve().parents[2] / "egs" / "TEMPLATE" / "conf" / "feats.yaml"


def test_round_trip_sorted(tmp_path: Path) -> None:
    path = tmp_path / "speech_tokens"
    write_speech_tokens(path, {"b_1": [3, 0, 7], "B_2": [1], "a_1": [5, 5]})
    assert path.read_text() == "B_2 1\na_1 5 5\nb_1 3 0 7\n"  # C order: capitals first
    assert read_speech_tokens(path) == {"B_2": [1], "a_1": [5, 5], "b_1": [3, 0, 7]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a 1 2\nb 1 x\n", ":2: b: tokens must be integers"),
        ("a 1 2\nb\n", ":2: b: no value after the key"),
        ("b 1\na 2\n", ":2: a: not sorted"),
        ("a 1\na 2\n", ":2: a: duplicate key"),
        ("a 1 -3\n", ":1: a: token -3 is not"),
        ("a 1 8\n", ":1: a: token 8 is not [0, 8)"),
    ],
)
def test_reader_names_file_line_and_utterance(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "speech_tokens"
    path.write_text(text)
    with pytest.raises(SpeechTokensError) as err:
        read_speech_tokens(path, vocab_size=8)
    assert f"{path}{message}" in str(err.value)


def test_missing_file_and_bad_rows(tmp_path: Path) -> None:
    with pytest.raises(SpeechTokensError, match="does not exist"):
        read_speech_tokens(tmp_path / "nothing")
    with pytest.raises(SpeechTokensError, match="no speech tokens"):
        write_speech_tokens(tmp_path / "t", {"a": []})
    with pytest.raises(SpeechTokensError, match="whitespace"):
        write_speech_tokens(tmp_path / "t", {"a b": [1]})
    assert not (tmp_path / "t").exists()


def test_tokenizer_cli_and_sharded_dump_agree(tmp_path: Path) -> None:
    utts = utterance_ids(speakers=2, per_speaker=4)
    scp = write_feats(tmp_path / "feats", utts)
    conf = tmp_path / "tok.yaml"
    conf.write_text(
        "num_tokens: 8\nkmeans_iters: 3\ndecoder_channels: 8\ndecoder_layers: 1\n"
        "decoder_steps: 2\nmax_utts: 6\n"
    )
    tok = tmp_path / "tok" / "tokenizer.pt"
    train_speech_tokenizer.main(
        [
            "--config",
            str(conf),
            "--feats-config",
            str(FEATS_YAML),
            "--feats-scp",
            str(scp),
            "--out",
            str(tok),
        ]
    )
    assert load_speech_tokenizer(tok).vocab_size == 8
    assert "num_tokens: 8\nstack: 2\n" in (tok.parent / "config.yaml").read_text()
    assert (tok.parent / "command.sh").is_file()
    args = ["--tokenizer", str(tok), "--feats-scp", str(scp)]
    dump_speech_tokens.main([*args, "--out", str(tmp_path / "one" / "speech_tokens")])
    for job in ("1", "2", "3"):
        dump_speech_tokens.main(
            [*args, "--out", str(tmp_path / "three" / "speech_tokens"), "--nj", "3", "--job", job]
        )
    one = read_speech_tokens(tmp_path / "one" / "speech_tokens", vocab_size=8)
    shards = [read_speech_tokens(tmp_path / "three" / f"speech_tokens.{j}") for j in (1, 2, 3)]
    assert [len(s) for s in shards] == [3, 3, 2]  # Kaldi's split: the first shards get one more
    assert {k: v for s in shards for k, v in s.items()} == one and sorted(one) == sorted(utts)
    # stacks of 2 frames, the last padded: ceil(frames / 2) tokens per utterance
    frames = {u: len(m) for u, m in kaldiio.load_scp(str(scp)).items()}
    assert all(len(one[u]) == -(-frames[u] // 2) for u in utts)


def test_unknown_tokenizer_kind(tmp_path: Path) -> None:
    torch.save({"kind": "xcodec2"}, tmp_path / "t.pt")
    with pytest.raises(ValueError, match="unknown speech tokenizer kind 'xcodec2'"):
        load_speech_tokenizer(tmp_path / "t.pt")


def test_prompt_pool_needs_tokens_for_every_utterance(tmp_path: Path) -> None:
    data, tokens = make_token_set(tmp_path, speakers=2, per_speaker=3)
    pool = PromptPool.load(data, tokens)
    prompts = pool.pick(sorted(pool.utt2spk), seed=0)
    assert all(p != u and pool.utt2spk[p] == pool.utt2spk[u] for u, p in prompts.items())
    rows = tokens.read_text().splitlines()
    tokens.write_text("\n".join(rows[:2] + rows[3:]) + "\n")
    with pytest.raises(
        SpeechTokensError, match=f"{tokens}: spk0_002: utterance of .* has no speech tokens"
    ):
        PromptPool.load(data, tokens)
