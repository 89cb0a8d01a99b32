"""The mini corpora on disk: real layouts, byte-identical for a seed, read by the preparers."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import soundfile

from local_lib.bin import make_mini_corpus as cli
from local_lib.data.mini.corpora import make_mini_corpus
from local_lib.data.mini.emotions import EMOTIONS
from local_lib.data.mini.espeak import EspeakError, require_espeak
from local_lib.data.mini.voices import ESD_SPEAKERS

K = 3  # sentences per folder: one each for train/dev/test, fast to synthesise


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """Each corpus built once at seed 0 with two workers, capped at K sentences."""
    root = tmp_path_factory.mktemp("mini")
    for corpus in ("mini_esd", "mini_libritts", "mini_seedtts"):
        assert make_mini_corpus(corpus, root / corpus, seed=0, nj=2, max_sentences=K)
    return {corpus: root / corpus for corpus in ("mini_esd", "mini_libritts", "mini_seedtts")}


def digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("corpus", ["mini_esd", "mini_libritts", "mini_seedtts"])
def test_same_seed_gives_byte_identical_corpus_whatever_nj(built, tmp_path, corpus):
    again = tmp_path / corpus
    make_mini_corpus(corpus, again, seed=0, nj=1, max_sentences=K)
    assert digest_tree(again) == digest_tree(built[corpus])


def test_other_seed_gives_other_text(built, tmp_path):
    other = tmp_path / "esd1"
    make_mini_corpus("mini_esd", other, seed=1, max_sentences=K)
    text = (other / "0011/0011.txt").read_text()
    assert text != (built["mini_esd"] / "0011/0011.txt").read_text()


def test_esd_layout_numbering_and_same_sentences_per_emotion(built):
    root = built["mini_esd"]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [s.id for s in ESD_SPEAKERS]
    for spk in (s.id for s in ESD_SPEAKERS):
        rows = [line.split("\t") for line in (root / spk / f"{spk}.txt").read_text().splitlines()]
        assert [r[0] for r in rows] == [f"{spk}_{i:06d}" for i in range(1, 5 * K + 1)]
        for e, emotion in enumerate(EMOTIONS):
            block = rows[e * K:(e + 1) * K]
            assert {r[2] for r in block} == {emotion}
            assert [r[1] for r in block] == [r[1] for r in rows[:K]]
            wavs = sorted(p.name for p in (root / spk / emotion).iterdir())
            assert wavs == [f"{r[0]}.wav" for r in block]
    sad_first = EMOTIONS.index("Sad") * K + 1
    info = soundfile.info(str(root / f"0011/Sad/0011_{sad_first:06d}.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")


def test_libritts_layout_naming_and_rate(built):
    root = built["mini_libritts"]
    subsets = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert subsets == ["dev-clean", "test-clean", "train-clean-100"]
    wavs = sorted(root.rglob("*.wav"))
    speakers = {sub: {w.parts[-3] for w in wavs if w.parts[-4] == sub} for sub in subsets}
    assert len(speakers["train-clean-100"]) >= 4
    assert not speakers["train-clean-100"] & (speakers["dev-clean"] | speakers["test-clean"])
    for wav in wavs:
        spk, chapter = wav.parts[-3:-1]
        assert re.fullmatch(rf"{spk}_{chapter}_\d{{6}}_\d{{6}}\.wav", wav.name), wav
        assert spk.isdigit() and chapter.isdigit()
        stem = wav.with_suffix("")
        text = Path(f"{stem}.normalized.txt").read_text()
        assert text and Path(f"{stem}.original.txt").read_text() == text
    assert soundfile.info(str(wavs[0])).samplerate == 24000


def test_seedtts_list_points_at_prompts_from_held_out_voices(built):
    root = built["mini_seedtts"] / "en"
    lines = (root / "meta.lst").read_text().splitlines()
    assert len(lines) == 4 * K
    libritts_speakers = {p.name for p in built["mini_libritts"].glob("*/*")}
    for line in lines:
        utt, prompt_text, prompt_wav, text = line.split("|")
        assert (root / prompt_wav).is_file() and (root / "wavs" / f"{utt}.wav").is_file()
        assert prompt_text and text and prompt_text != text
        assert utt.split("_")[0] not in libritts_speakers


def test_preparers_read_the_trees_into_valid_data_dirs(built, tmp_path):
    prepare = pytest.importorskip("local_lib.bin.prepare_data")
    kaldi_dir = pytest.importorskip("local_lib.data.kaldi_dir")
    # With K sentences per folder there are too few for ESD's 20/30 split, so shrink it.
    runs = {
        "esd": ["--corpus", "esd", "--root", str(built["mini_esd"]), "--n-dev", "1",
                "--n-test", "1"],
        "libritts": ["--corpus", "libritts", "--root", str(built["mini_libritts"])],
        "seedtts": ["--corpus", "seedtts", "--root", str(built["mini_seedtts"]), "--lang", "en"],
    }
    for name, argv in runs.items():
        assert prepare.main([*argv, "--out-dir", str(tmp_path / name)]) == 0, name
    data_dirs = [tmp_path / "seedtts"] + [
        tmp_path / name / split
        for name in ("esd", "libritts") for split in ("train", "dev", "test")
    ]
    for data_dir in data_dirs:
        assert kaldi_dir.validate_data_dir(data_dir) == [], data_dir
    emos = set((tmp_path / "esd/train/utt2emo").read_text().split()[1::2])
    assert emos == set(EMOTIONS)


def test_rerun_on_finished_dir_does_nothing(built):
    assert make_mini_corpus("mini_seedtts", built["mini_seedtts"], seed=0, max_sentences=K) is False


def test_missing_espeak_says_how_to_install(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EspeakError, match="apt-get install espeak-ng"):
        require_espeak()
    rc = cli.main(["--corpus", "mini_esd", "--out-dir", str(tmp_path / "x"), "--seed", "0"])
    assert rc == 1 and "apt-get install espeak-ng" in caplog.text
    assert not (tmp_path / "x").exists()
