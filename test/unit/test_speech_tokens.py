"""Speech-token files: round trip, C-locale order, and errors that name file, line and utterance."""

from pathlib import Path

import pytest

from local_lib.data.speech_tokens import SpeechTokensError, read_speech_tokens, write_speech_tokens


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
