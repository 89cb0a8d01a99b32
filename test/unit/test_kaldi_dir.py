"""Kaldi data-dir reading, writing and validation, including every kind of broken input."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local_lib.data.kaldi_dir import (
    DataDirError,
    Problem,
    load_data_dir,
    read_kv,
    validate_data_dir,
    write_data_dir,
    write_kv,
)

from fake_corpora import make_data_dir, write_tone  # noqa: E402


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return make_data_dir(tmp_path / "data", tmp_path / "wavs", count=5)


def problems_of(path: Path, check_audio: bool = True) -> list[str]:
    return [str(p) for p in validate_data_dir(path, check_audio=check_audio)]


def rewrite(path: Path, transform) -> None:
    lines = path.read_bytes().split(b"\n")[:-1]
    path.write_bytes(b"\n".join(transform(lines)) + b"\n")


def test_write_kv_sorts_in_c_locale_and_round_trips(tmp_path):
    mapping = {"b": "2", "B": "1", "a-b": "x y", "a": "z", "é": "accent"}
    write_kv(tmp_path / "f", mapping)
    text = (tmp_path / "f").read_text(encoding="utf-8")
    assert [line.split()[0] for line in text.splitlines()] == ["B", "a", "a-b", "b", "é"]
    assert read_kv(tmp_path / "f") == mapping
    assert list(tmp_path.iterdir()) == [tmp_path / "f"]  # no temp file left behind


KEYS = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Z")), min_size=1
).filter(lambda key: not any(ch.isspace() for ch in key))
VALUES = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1
).filter(lambda value: value.strip() == value and value)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(KEYS, VALUES))
def test_write_then_read_is_identity(tmp_path_factory, mapping):
    path = tmp_path_factory.mktemp("kv") / "f"
    write_kv(path, mapping)
    assert read_kv(path) == mapping


def test_write_kv_refuses_bad_entries_and_keeps_old_file(tmp_path):
    write_kv(tmp_path / "f", {"a": "1"})
    for bad in ({"a b": "1"}, {"a": ""}, {"a": "two\nlines"}):
        with pytest.raises(DataDirError):
            write_kv(tmp_path / "f", bad)
    assert read_kv(tmp_path / "f") == {"a": "1"}


@pytest.mark.parametrize(
    "content, where, words",
    [
        (b"a 1\nb \xff\xfe\n", ":2:", "UTF-8"),
        (b"a 1\nb\n", ":2: b:", "no value"),
        (b"a 1\nb 2\na 3\n", ":3: a:", "duplicate"),
        (b"b 1\na 2\n", ":2: a:", "not sorted"),
    ],
)
def test_read_kv_names_file_line_and_key(tmp_path, content, where, words):
    (tmp_path / "f").write_bytes(content)
    with pytest.raises(DataDirError) as err:
        read_kv(tmp_path / "f")
    assert f"{tmp_path / 'f'}{where}" in str(err.value)
    assert words in str(err.value)


def test_write_data_dir_derives_spk2utt(tmp_path):
    write_data_dir(tmp_path, {"utt2spk": {"s2-b": "s2", "s1-b": "s1", "s1-a": "s1"},
                              "utt2emo": {"s2-b": "Sad", "s1-b": "Happy", "s1-a": "Sad"}})
    assert read_kv(tmp_path / "spk2utt") == {"s1": "s1-a s1-b", "s2": "s2-b"}
    assert read_kv(tmp_path / "utt2emo")["s1-b"] == "Happy"


def test_load_data_dir_reads_extras_and_segments(data_dir):
    write_kv(data_dir / "utt2emo", {utt: "Sad" for utt in read_kv(data_dir / "utt2spk")})
    loaded = load_data_dir(data_dir)
    assert loaded.utts == sorted(read_kv(data_dir / "utt2spk"))
    assert set(loaded.extras) == {"utt2emo"}
    assert loaded.segments is None
    recording = next(iter(loaded.wav_scp))
    (data_dir / "segments").write_text(f"{recording}-seg {recording} 0.10 0.30\n")
    segment = load_data_dir(data_dir).segments[f"{recording}-seg"]
    assert (segment.recording, segment.start, segment.end) == (recording, 0.10, 0.30)


def test_load_data_dir_names_a_missing_file(data_dir):
    (data_dir / "text").unlink()
    with pytest.raises(DataDirError, match="missing required file.*text"):
        load_data_dir(data_dir)


def test_valid_dir_has_no_problems(data_dir):
    assert problems_of(data_dir) == []


def test_problem_formats_as_file_line_utt_message():
    assert str(Problem("text", 3, "u1", "empty transcript")) == "text:3: u1: empty transcript"


def test_missing_wav_is_reported_unless_audio_is_skipped(data_dir):
    first = read_kv(data_dir / "wav.scp")
    Path(next(iter(first.values()))).unlink()
    utt = next(iter(first))
    assert problems_of(data_dir) == [f"wav.scp:1: {utt}: wav file does not exist: {first[utt]}"]
    assert problems_of(data_dir, check_audio=False) == []


def test_unreadable_wav_is_reported(data_dir):
    wavs = read_kv(data_dir / "wav.scp")
    utt = list(wavs)[2]
    Path(wavs[utt]).write_text("not audio")
    [problem] = problems_of(data_dir)
    assert problem.startswith(f"wav.scp:3: {utt}: cannot read audio {wavs[utt]}")


def test_empty_transcript_is_reported(data_dir):
    rewrite(data_dir / "text", lambda lines: [lines[0], lines[1].split()[0], *lines[2:]])
    utt = list(read_kv(data_dir / "utt2spk"))[1]
    assert problems_of(data_dir) == [f"text:2: {utt}: empty transcript"]


def test_duplicate_and_unsorted_ids_are_reported(data_dir):
    rewrite(data_dir / "utt2spk", lambda lines: [lines[1], lines[0], *lines[1:]])
    utts = list(read_kv(data_dir / "text"))
    found = problems_of(data_dir)
    assert f"utt2spk:2: {utts[0]}: not sorted (comes after {utts[1]!r}; use LC_ALL=C)" in found
    assert f"utt2spk:3: {utts[1]}: duplicate key (first on line 1)" in found


def test_utterance_in_text_but_not_in_wav_scp_is_reported(data_dir):
    rewrite(data_dir / "wav.scp", lambda lines: lines[:-1])
    utt = list(read_kv(data_dir / "text"))[-1]
    assert f"text:5: {utt}: not in wav.scp" in problems_of(data_dir)
    assert f"utt2spk:5: {utt}: not in wav.scp" in problems_of(data_dir)


def test_utterance_only_in_wav_scp_is_reported(data_dir):
    rewrite(data_dir / "text", lambda lines: lines[1:])
    utt = list(read_kv(data_dir / "wav.scp"))[0]
    assert problems_of(data_dir) == [f"wav.scp:1: {utt}: not in text"]


def test_non_utf8_line_is_reported_with_its_line(data_dir):
    rewrite(data_dir / "text", lambda lines: [*lines[:3], lines[3] + b" caf\xe9", *lines[4:]])
    found = problems_of(data_dir)
    assert any(p.startswith("text:4: -: not valid UTF-8") for p in found), found


def test_every_problem_is_reported_at_once(data_dir):
    rewrite(data_dir / "text", lambda lines: [lines[0].split()[0], *lines[1:]])
    rewrite(data_dir / "utt2spk", lambda lines: [*lines[:-1], lines[-1] + b"x"])
    (data_dir / "wav.scp").write_text((data_dir / "wav.scp").read_text() + "zz /nowhere.wav\n")
    found = problems_of(data_dir)
    assert len(found) >= 4
    assert any("empty transcript" in p for p in found)
    assert any("spk2utt" in p for p in found)
    assert any("zz: not in text" in p for p in found)
    assert any("wav file does not exist: /nowhere.wav" in p for p in found)


def test_speaker_prefix_and_spk2utt_consistency(data_dir):
    utts = list(read_kv(data_dir / "utt2spk"))
    mapping = read_kv(data_dir / "utt2spk")
    mapping[utts[0]] = "other"
    write_kv(data_dir / "utt2spk", mapping)
    found = problems_of(data_dir)
    assert f"utt2spk:1: {utts[0]}: utterance id does not start with its speaker id 'other'" in found
    assert "spk2utt:0: other: speaker of utt2spk is missing" in found
    assert any(p.startswith("spk2utt:1: spk0: utterance list differs") for p in found)


def test_missing_required_file_and_missing_dir(data_dir, tmp_path):
    (data_dir / "spk2utt").unlink()
    assert "spk2utt:0: -: required file is missing" in problems_of(data_dir)
    assert problems_of(tmp_path / "absent") == [".:0: -: data dir does not exist"]


def test_extras_must_match_the_utterances(data_dir):
    utts = list(read_kv(data_dir / "utt2spk"))
    write_kv(data_dir / "utt2emo", {utt: "Sad" for utt in utts[1:]} | {"zz": "Sad"})
    write_kv(data_dir / "utt2dur", {utt: "-1" for utt in utts})
    found = problems_of(data_dir)
    assert f"wav.scp:1: {utts[0]}: not in utt2emo" in found
    assert "utt2emo:5: zz: not in wav.scp" in found
    assert f"utt2dur:1: {utts[0]}: expected a positive float, got '-1'" in found


def test_segments_are_checked_against_wav_scp(tmp_path):
    wav = write_tone(tmp_path / "rec.wav", seconds=1.0)
    write_data_dir(tmp_path / "d", {
        "wav.scp": {"spk-rec": str(wav)},
        "segments": {"spk-rec-1": "spk-rec 0.0 0.5", "spk-rec-2": "spk-missing 0.5 0.2"},
        "text": {"spk-rec-1": "a", "spk-rec-2": "b"},
        "utt2spk": {"spk-rec-1": "spk", "spk-rec-2": "spk"},
    })
    found = problems_of(tmp_path / "d")
    assert found == ["segments:2: spk-rec-2: need 0 <= start < end, got start=0.5 end=0.2"]
    (tmp_path / "d/segments").write_text("spk-rec-1 spk-rec 0.0 0.5\nspk-rec-2 other 0.5 0.9\n")
    assert "segments:2: spk-rec-2: recording other is not in wav.scp" in problems_of(tmp_path / "d")
