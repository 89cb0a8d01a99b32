"""Corpus preparers on small fake trees of the real layouts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from local_lib.bin import prepare_data
from local_lib.data.corpora.common import CorpusError
from local_lib.data.corpora.esd import parse_speakers, prepare_esd
from local_lib.data.corpora.libritts import prepare_libritts
from local_lib.data.corpora.seedtts import prepare_seedtts, read_seedtts_list
from local_lib.data.kaldi_dir import read_kv, validate_data_dir

from fake_corpora import (  # noqa: E402
    make_fake_esd,
    make_fake_libritts,
    make_fake_seedtts,
    write_tone,
)

CHINESE = ("中立", "生气", "快乐", "伤心", "惊喜")


@pytest.fixture(scope="module")
def esd_root(tmp_path_factory) -> Path:
    return make_fake_esd(tmp_path_factory.mktemp("esd"), per_emotion=4)


def test_esd_official_split_by_position(esd_root, tmp_path):
    counts = prepare_esd(esd_root, tmp_path, n_dev=1, n_test=2)
    assert counts == {"train": 10, "dev": 10, "test": 20}  # 2 speakers x 5 emotions x (1, 2, 1)
    dev = read_kv(tmp_path / "dev/utt2emo")
    assert dev["0011_000001"] == "Neutral" and dev["0012_000005"] == "Angry"
    assert set(read_kv(tmp_path / "test/text")) >= {"0011_000002", "0011_000003"}
    assert set(read_kv(tmp_path / "train/text")) == {
        f"{spk}_{4 * e + 4:06d}" for spk in ("0011", "0012") for e in range(5)
    }
    for split in ("train", "dev", "test"):
        assert validate_data_dir(tmp_path / split) == []
        assert set(read_kv(tmp_path / split / "utt2lang").values()) == {"en"}
        assert all(Path(p).is_absolute() for p in read_kv(tmp_path / split / "wav.scp").values())
    texts = {s: set(read_kv(tmp_path / s / "text").values()) for s in ("train", "dev", "test")}
    assert not texts["train"] & texts["dev"] and not texts["train"] & texts["test"]


def test_esd_chinese_labels_and_release_subfolders(tmp_path):
    root = make_fake_esd(tmp_path / "esd", speakers=("0013",), per_emotion=3, labels=CHINESE,
                         nested=True)
    prepare_esd(root, tmp_path / "data", n_dev=1, n_test=1)
    assert read_kv(tmp_path / "data/dev/utt2emo") == {
        "0013_000001": "Neutral", "0013_000004": "Angry", "0013_000007": "Happy",
        "0013_000010": "Sad", "0013_000013": "Surprise",
    }


def test_esd_speaker_selection(esd_root, tmp_path):
    assert parse_speakers("0011-0013,0015") == ["0011", "0012", "0013", "0015"]
    prepare_esd(esd_root, tmp_path, speakers=["0012"], n_dev=1, n_test=1)
    assert set(read_kv(tmp_path / "train/utt2spk").values()) == {"0012"}
    with pytest.raises(CorpusError, match="0014: speaker folder is missing"):
        prepare_esd(esd_root, tmp_path, speakers=["0011", "0014"], n_dev=1, n_test=1)
    with pytest.raises(CorpusError, match="bad speaker list"):
        parse_speakers("11-x")


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("0011_000002 no tabs here Neutral", "expected 'utt<TAB>text<TAB>emotion'"),
        ("0011_000002\t\tNeutral", "expected 'utt<TAB>text<TAB>emotion'"),
        ("0011_000002\tHello.\tBored", "0011_000002: unknown emotion label 'Bored'"),
        ("0011_000002\tHello.\tAngry", "labelled Angry but the wav is in"),
        ("0099_000002\tHello.\tNeutral", "does not start with '0011_'"),
    ],
)
def test_esd_bad_txt_line_names_file_and_line(tmp_path, bad_line, message):
    root = make_fake_esd(tmp_path / "esd", speakers=("0011",), per_emotion=3)
    txt = root / "0011/0011.txt"
    lines = txt.read_text(encoding="utf-8").splitlines()
    lines[1] = bad_line
    txt.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        prepare_esd(root, tmp_path / "data", n_dev=1, n_test=1)
    assert f"{txt}:2:" in str(err.value) and message in str(err.value)


def test_esd_non_utf8_txt_and_wav_without_transcript(tmp_path):
    root = make_fake_esd(tmp_path / "esd", speakers=("0011",), per_emotion=3)
    txt = root / "0011/0011.txt"
    original = txt.read_bytes()
    txt.write_bytes(original.replace(b"Sentence number 2.", b"Sentence \xe9", 1))
    with pytest.raises(CorpusError, match=r"0011\.txt:2: not valid UTF-8"):
        prepare_esd(root, tmp_path / "data", n_dev=1, n_test=1)
    write_tone(root / "0011/Sad/0011_000099.wav")
    txt.write_bytes(original)
    with pytest.raises(CorpusError, match="0011_000099.wav: no line for 0011_000099"):
        prepare_esd(root, tmp_path / "data", n_dev=1, n_test=1)


def test_esd_transcript_without_wav_is_skipped_with_a_warning(tmp_path, caplog):
    root = make_fake_esd(tmp_path / "esd", speakers=("0011",), per_emotion=3)
    (root / "0011/Happy/0011_000008.wav").unlink()
    with caplog.at_level(logging.WARNING):
        counts = prepare_esd(root, tmp_path / "data", n_dev=1, n_test=1)
    assert counts["train"] == 4 and "0011_000008" not in read_kv(tmp_path / "data/test/text")
    assert "1 transcript line(s) without a wav" in caplog.text


def test_libritts_subsets_and_merged_train(tmp_path):
    root = make_fake_libritts(tmp_path / "LibriTTS",
                              subsets=("train-clean-100", "train-clean-360", "dev-clean",
                                       "test-clean"))
    counts = prepare_libritts(root, tmp_path / "data", ["train-clean-100", "train-clean-360"])
    assert counts == {"train": 8, "dev": 4, "test": 4}
    utt2spk = read_kv(tmp_path / "data/train/utt2spk")
    assert utt2spk["19_100_000001_000001"] == "19" and utt2spk["199_101_000000_000000"] == "199"
    assert read_kv(tmp_path / "data/dev/text")["21_102_000001_000001"] == "dev-clean 21 says 1."
    for split in ("train", "dev", "test"):
        assert validate_data_dir(tmp_path / "data" / split) == []


def test_libritts_skips_utterances_without_normalized_text(tmp_path, caplog):
    root = make_fake_libritts(tmp_path / "LibriTTS")
    (root / "dev-clean/20/101/20_101_000000_000000.normalized.txt").unlink()
    (root / "dev-clean/20/101/20_101_000001_000001.normalized.txt").write_text("  \n")
    with caplog.at_level(logging.WARNING):
        counts = prepare_libritts(root, tmp_path / "data")
    assert counts["dev"] == 2
    assert "skipped 2 utterance(s) without a normalized transcript" in caplog.text


def test_libritts_missing_subset_is_an_error(tmp_path):
    root = make_fake_libritts(tmp_path / "LibriTTS", subsets=("dev-clean", "test-clean"))
    with pytest.raises(CorpusError, match="train-clean-100: LibriTTS subset folder is missing"):
        prepare_libritts(root, tmp_path / "data")


def test_seedtts_list_resolves_prompts_and_writes_one_dir(tmp_path):
    meta = make_fake_seedtts(tmp_path / "seed", count=3)
    items = read_seedtts_list(meta)
    assert [item.utt for item in items] == ["case_000", "case_001", "case_002"]
    assert items[1].prompt_wav == (meta.parent / "prompt-wavs/case_001.wav").resolve()
    assert (items[1].prompt_text, items[1].text) == ("Prompt sentence 1.", "Target sentence 1.")
    assert prepare_seedtts(tmp_path / "seed", tmp_path / "test", lang="en") == 3
    data = tmp_path / "test"
    assert read_kv(data / "text")["case_002"] == "Target sentence 2."
    assert read_kv(data / "utt2spk")["case_002"] == "case_002"
    assert read_kv(data / "wav.scp") == read_kv(data / "utt2prompt_wav")
    assert read_kv(data / "utt2prompt_text")["case_000"] == "Prompt sentence 0."
    assert set(read_kv(data / "utt2lang").values()) == {"en"}
    assert validate_data_dir(data) == []
    assert not (data / "utt2target_wav").exists()  # the list has no ground truth


def test_seedtts_ground_truth_beside_the_list_or_in_a_fifth_field(tmp_path):
    meta = make_fake_seedtts(tmp_path / "seed", count=2)
    (meta.parent / "wavs").mkdir()
    (meta.parent / "wavs/case_000.wav").write_bytes(b"")
    assert [item.target_wav for item in read_seedtts_list(meta)] == [
        (meta.parent / "wavs/case_000.wav").resolve(), None
    ]
    prepare_seedtts(tmp_path / "seed", tmp_path / "one", lang="en")
    assert not (tmp_path / "one/utt2target_wav").exists()  # not every case has one
    lines = meta.read_text().splitlines()
    meta.write_text(f"{lines[0]}\n{lines[1]}|wavs/case_000.wav\n")
    prepare_seedtts(tmp_path / "seed", tmp_path / "both", lang="en")
    target = str((meta.parent / "wavs/case_000.wav").resolve())
    assert read_kv(tmp_path / "both/utt2target_wav") == {"case_000": target, "case_001": target}
    assert validate_data_dir(tmp_path / "both") == []


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("case_9|only|three", "expected 'utt|prompt_text|prompt_wav|text'"),
        ("case_9|p||t", "expected 'utt|prompt_text|prompt_wav|text'"),
        ("case_9|p|prompt-wavs/missing.wav|t", "case_9: prompt wav"),
        ("case_000|p|prompt-wavs/case_000.wav|t", "duplicate utterance (first on line 1)"),
    ],
)
def test_seedtts_bad_line_names_file_and_line(tmp_path, bad_line, message):
    meta = make_fake_seedtts(tmp_path / "seed", count=2)
    meta.write_text(meta.read_text() + bad_line + "\n")
    with pytest.raises(CorpusError) as err:
        read_seedtts_list(meta)
    assert f"{meta}:3:" in str(err.value) and message in str(err.value)


def test_seedtts_accepts_a_fifth_ground_truth_field(tmp_path):
    meta = make_fake_seedtts(tmp_path / "seed", lang="zh", count=1)
    meta.write_text(meta.read_text().strip() + "|wavs/case_000.wav\n")
    assert read_seedtts_list(meta)[0].text == "Target sentence 0."


def test_prepare_data_cli(tmp_path, esd_root):
    make_fake_libritts(tmp_path / "LibriTTS")
    make_fake_seedtts(tmp_path / "seed")
    assert prepare_data.main(["--corpus", "esd", "--root", str(esd_root), "--out-dir",
                              str(tmp_path / "esd"), "--n-dev", "1", "--n-test", "1",
                              "--speakers", "0011"]) == 0
    assert set(read_kv(tmp_path / "esd/dev/utt2spk").values()) == {"0011"}
    assert prepare_data.main(["--corpus", "libritts", "--root", str(tmp_path / "LibriTTS"),
                              "--out-dir", str(tmp_path / "lt")]) == 0
    assert sorted(p.name for p in (tmp_path / "lt").iterdir()) == ["dev", "test", "train"]
    assert prepare_data.main(["--corpus", "seedtts", "--root", str(tmp_path / "seed"),
                              "--lang", "en", "--out-dir", str(tmp_path / "st")]) == 0
    assert (tmp_path / "st/utt2prompt_wav").is_file()
    assert prepare_data.main(["--corpus", "seedtts", "--root", str(tmp_path / "seed"),
                              "--lang", "zh", "--out-dir", str(tmp_path / "zh")]) == 1
