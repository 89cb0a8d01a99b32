"""CharTokenizer: normalisation, round trip, unknowns, token-list file."""

from pathlib import Path

import pytest

from local_lib.data.text_tokenizer import CharTokenizer, normalize_text


def test_normalize_lowercases_and_collapses_whitespace() -> None:
    assert normalize_text("  Hello,\tWORLD \n again ") == "hello, world again"
    assert normalize_text("ﬁne") == "fine"  # NFKC expands the ligature


def test_build_encode_decode_round_trip() -> None:
    tok = CharTokenizer.build(["Hi there", "ok!"])
    # specials + sorted {' ', '!', 'e', 'h', 'i', 'k', 'o', 'r', 't'}
    assert tok.tokens == ["<pad>", "<unk>", "<space>", "!", "e", "h", "i", "k", "o", "r", "t"]
    assert tok.vocab_size == 11 and tok.pad_id == 0 and tok.unk_id == 1
    ids = tok.encode("HI  ok")
    assert ids == [5, 6, 2, 8, 7]
    assert tok.decode(ids + [0, 0]) == "hi ok"


def test_unknown_characters_map_to_unk() -> None:
    tok = CharTokenizer.build(["ab"])
    assert tok.encode("abz") == [2, 3, 1]
    assert tok.decode(tok.encode("abz")) == "ab<unk>"
    with pytest.raises(ValueError, match="outside vocabulary"):
        tok.decode([99])


def test_save_load(tmp_path: Path) -> None:
    tok = CharTokenizer.build(["a b c"])
    path = tmp_path / "sub" / "tokens.txt"
    tok.save(path)
    assert path.read_text(encoding="utf-8").splitlines()[:3] == ["<pad>", "<unk>", "<space>"]
    again = CharTokenizer.load(path)
    assert again.tokens == tok.tokens
    assert again.encode("c a") == tok.encode("c a")


def test_load_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "tokens.txt"
    bad.write_text("<pad>\n<unk>\n\nx\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"tokens.txt:3: empty"):
        CharTokenizer.load(bad)
    bad.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must start with"):
        CharTokenizer.load(bad)
