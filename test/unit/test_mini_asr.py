"""mini_asr, the reward ASR's extra corpus: its sizes, voices and sentences disjoint from every
other mini corpus, determinism, and a small build the LibriTTS preparer reads as a subset."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from local_lib.bin import prepare_data
from local_lib.data.kaldi_dir import read_kv, validate_data_dir
from local_lib.data.mini.asr import SUBSET, asr_sentences, plan_asr
from local_lib.data.mini.corpora import make_mini_corpus
from local_lib.data.mini.esd import esd_sentences
from local_lib.data.mini.libritts import libritts_sentences
from local_lib.data.mini.voices import (
    ASR_SPEAKERS,
    ESD_SPEAKERS,
    LIBRITTS_SPEAKERS,
    SEEDTTS_SPEAKERS,
)


@pytest.fixture(scope="module")
def plan():
    return plan_asr(0)


def test_sizes_40_speakers_reading_100_sentences_each_in_libritts_naming(plan):
    assert len(plan.utterances) == 4000
    per_speaker = Counter(u.path.parts[1] for u in plan.utterances)
    assert len(per_speaker) == 40 and set(per_speaker.values()) == {100}
    assert {u.path.parts[0] for u in plan.utterances} == {SUBSET} == {"train-clean-360"}
    chapters = {u.path.parent for u in plan.utterances}
    assert len(chapters) == 80
    first = plan.utterances[0].path
    assert first == Path(SUBSET, "5001", "500101", "5001_500101_000000_000000.wav")
    assert {u.sample_rate for u in plan.utterances} == {24000}
    rows = plan.texts[Path("speakers.tsv")].splitlines()
    assert rows[0] == "READER\tGENDER\tSUBSET\tNAME" and len(rows) == 41
    assert rows[1] == f"5001\tM\t{SUBSET}\t{ASR_SPEAKERS[0].voice.name}"


def test_no_file_and_variant_of_another_corpus_is_reused():
    others = ESD_SPEAKERS + SEEDTTS_SPEAKERS + tuple(
        s for group in LIBRITTS_SPEAKERS.values() for s in group
    )
    pairs = [s.voice.name for s in ASR_SPEAKERS]
    assert len(set(pairs)) == 40
    assert not set(pairs) & {s.voice.name for s in others}
    assert {s.id for s in ASR_SPEAKERS}.isdisjoint({s.id for s in others})
    assert Counter(s.gender for s in ASR_SPEAKERS) == {"M": 20, "F": 20}
    for speaker in ASR_SPEAKERS:  # the variant (m3, f2) says the gender
        assert speaker.voice.name.split("+")[1][0] == speaker.gender.lower(), speaker


def test_sentences_are_new_unique_and_none_is_held_out_anywhere(plan):
    sentences = [u.text for u in plan.utterances]
    assert len(set(sentences)) == 4000
    libritts = libritts_sentences(0)
    for name in ("dev-clean", "test-clean", "seedtts_prompt", "seedtts_text", "train-clean-100"):
        assert not set(sentences) & set(libritts[name]), name
    assert not set(sentences) & set(esd_sentences(0))


def test_deterministic_for_the_seed_and_the_seed_changes_only_sentences(plan):
    again = plan_asr(0)
    assert again.texts == plan.texts and again.utterances == plan.utterances
    other = asr_sentences(1)
    assert other != asr_sentences(0)
    held_out = set(esd_sentences(1)) | set(libritts_sentences(1)["test-clean"])
    assert not set(other) & held_out


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_a_small_build_is_a_libritts_subset_built_once(tmp_path):
    root = tmp_path / "mini_asr"
    assert make_mini_corpus("mini_asr", root, seed=0, nj=2, max_sentences=1) is True
    assert len(list(root.glob(f"{SUBSET}/*/*/*.wav"))) == 80
    assert make_mini_corpus("mini_asr", root, seed=0, nj=2, max_sentences=1) is False
    out = tmp_path / "data/asr"
    argv = ["--corpus", "libritts", "--root", str(root), "--train-only",
            "--train-sets", SUBSET, "--out-dir", str(out)]  # fmt: skip
    assert prepare_data.main(argv) == 0
    assert validate_data_dir(out) == []
    assert len(read_kv(out / "utt2spk")) == 80 and len(read_kv(out / "spk2utt")) == 40
    assert not (tmp_path / "data/train").exists()
