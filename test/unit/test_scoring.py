"""Scoring: text normalisation, hand-counted WER/CER, score files, RESULTS.md, seed-tts mode."""

import math
from pathlib import Path

import numpy as np
import pytest

from local_lib.data.audio import save_audio
from local_lib.eval.error_rate import char_errors, word_errors
from local_lib.eval.score_table import (
    CORPUS_METRICS,
    SEEDTTS_METRICS,
    read_scores,
    render_results,
    summarise,
    write_scores,
)
from local_lib.eval.scoring import Evaluators, ScoreItem, score_items
from local_lib.eval.seedtts_eval import seedtts_items
from local_lib.eval.text_norm import normalize_text
from local_lib.eval.verification import equal_error_rate, verification_trials


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Hello, World!", "hello world"),
        ("It\u2019s  the dogs' bone.", "it's the dogs bone"),
        ("well-known \u2014 fact", "well known fact"),
        ("'Tis   fine", "tis fine"),
        ("Caf\u00e9 No. 42!", "café no 42"),
        ("  ", ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_word_errors_hand_counted():
    # ref: the cat sat on the mat (6 words)
    # hyp: the cat sit on mat mat now -> sat->sit (S), the->mat (S), +now (I)
    e = word_errors("The cat sat on the mat.", "the cat sit on mat mat now")
    assert (e.substitutions, e.deletions, e.insertions, e.ref_len) == (2, 0, 1, 6)
    assert e.rate == pytest.approx(3 / 6)


def test_word_errors_deletion_and_case_punctuation_ignored():
    e = word_errors("One, two, three four.", "ONE two four")
    assert (e.substitutions, e.deletions, e.insertions) == (0, 1, 0)
    assert word_errors("A b", "a B!").errors == 0


def test_char_errors_hand_counted():
    # "kitten" -> "sitting": k->s, e->i, +g : 3 edits over 6 chars; spaces not counted
    e = char_errors("kit ten", "sitting")
    assert (e.errors, e.ref_len) == (3, 6)


def test_empty_reference_and_hypothesis():
    assert word_errors("", "").rate == 0.0
    assert word_errors("", "extra words").rate == 2.0
    assert word_errors("two words", "").rate == 1.0


def test_equal_error_rate_known_cases():
    assert equal_error_rate([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 0.0
    assert equal_error_rate([0.1, 0.9], [1, 0]) == 1.0
    with pytest.raises(ValueError):
        equal_error_rate([0.5], [1])


def test_verification_trials_separable_speakers():
    emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    res = verification_trials(emb, ["a", "a", "b", "b"])
    assert res.eer == 0.0 and res.n_same == 2 and res.n_diff == 4
    assert res.sim_gap > 0.8


def _rows():
    return [
        {"utt": "u1", "word_errors": 1, "words": 4, "wer": 0.25, "spk_sim": 0.5, "emo_correct": 1},
        {"utt": "u2", "word_errors": 0, "words": 6, "wer": 0.0, "spk_sim": 0.7, "emo_correct": 0},
        {
            "utt": "u3",
            "word_errors": 3,
            "words": 2,
            "wer": 1.5,
            "spk_sim": float("nan"),
            "emo_correct": 1,
        },
    ]


def test_summarise_is_corpus_level_and_skips_undefined():
    by_name = {m.name: m for m in CORPUS_METRICS}
    assert summarise(_rows(), by_name["WER (%)"]).estimate == pytest.approx(100 * 4 / 12)
    sim = summarise(_rows(), by_name["speaker SIM"])
    assert sim.estimate == pytest.approx(0.6) and sim.n == 2
    seed_wer = summarise(_rows(), SEEDTTS_METRICS[0])
    assert seed_wer.estimate == pytest.approx(100 * 1.75 / 3)
    assert summarise(_rows(), by_name["emotion SIM"]) is None


def test_score_file_round_trip_and_results(tmp_path):
    write_scores(tmp_path / "a.tsv", _rows())
    back = read_scores(tmp_path / "a.tsv")
    assert list(back) == ["u1", "u2", "u3"] and back["u3"]["spk_sim"] == "nan"
    other = {u: dict(r, word_errors="0") for u, r in back.items()}
    text = render_results("sys", _rows(), CORPUS_METRICS, comparison=("base", other))
    assert "| WER (%) | 33.333 |" in text
    assert "Paired difference: this system − base" in text
    diff_line = [line for line in text.splitlines() if line.startswith("| WER (%)")][1]
    assert "| 33.333 |" in diff_line


def test_read_scores_names_bad_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("utt\twer\nu1\t0.1\nu2\n")
    with pytest.raises(ValueError, match=r"bad.tsv:3"):
        read_scores(path)


class FakeASR:
    def __init__(self, hyps):
        self.hyps = hyps

    def transcribe(self, wavs):
        return [self.hyps[len(w)] for w in wavs]


class FakeEmbedder:
    """Embedding = (mean, 1); the emotion label is 'Happy' for loud audio."""

    def embed(self, wavs):
        return np.array([[float(np.abs(w).mean()), 1.0] for w in wavs])

    def classify(self, wavs):
        return ["Happy" if np.abs(w).mean() > 0.2 else "Sad" for w in wavs]


def _tone(seconds: float, amp: float) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    return (amp * np.sin(2 * np.pi * 150 * t)).astype(np.float32)


def test_score_items_with_fakes(tmp_path):
    wavs = {"a": _tone(1.0, 0.5), "b": _tone(1.5, 0.1)}
    for name, w in wavs.items():
        save_audio(tmp_path / f"{name}.wav", w)
    items = [
        ScoreItem("a", "hello there world", tmp_path / "a.wav", tmp_path / "a.wav", "s1", "Happy"),
        ScoreItem("b", "good day", tmp_path / "b.wav", tmp_path / "a.wav", "s2", "Happy"),
    ]
    asr = FakeASR({16000: "hello world", 24000: "bad day sir"})
    rows, ver = score_items(items, Evaluators(asr, FakeEmbedder(), FakeEmbedder()), batch_size=1)
    assert ver is None  # one utterance per speaker: no same-speaker trials
    a, b = rows
    assert (a["word_errors"], a["words"], a["bad_case"]) == (1, 3, 0)
    assert (b["word_errors"], b["wer"], b["bad_case"]) == (2, 1.0, 1)
    assert a["spk_sim"] == pytest.approx(1.0) and b["spk_sim"] < 1.0
    assert (a["emo_correct"], b["emo_correct"], b["emo_pred"]) == (1, 0, "Sad")
    assert a["f0_rmse_hz"] == pytest.approx(0.0, abs=1e-6) and a["energy_rmse_db"] == pytest.approx(
        0.0, abs=1e-6
    )
    assert math.isfinite(b["f0_rmse_hz"])


def test_seedtts_items_uses_list_and_names_missing_wav(tmp_path):
    (tmp_path / "prompt-wavs").mkdir()
    save_audio(tmp_path / "prompt-wavs" / "p1.wav", _tone(0.5, 0.3))
    lst = tmp_path / "meta.lst"
    lst.write_text("u1|prompt words|prompt-wavs/p1.wav|target words\n")
    gen = tmp_path / "gen"
    gen.mkdir()
    with pytest.raises(FileNotFoundError, match="u1"):
        seedtts_items(lst, gen)
    save_audio(gen / "u1.wav", _tone(0.5, 0.3))
    (item,) = seedtts_items(lst, gen)
    assert item.text == "target words" and Path(item.ref_wav).name == "p1.wav"


def test_seedtts_list_bad_line_is_named(tmp_path):
    lst = tmp_path / "meta.lst"
    lst.write_text("u1|only two fields\n")
    with pytest.raises(ValueError, match=r"meta.lst:1"):
        seedtts_items(lst, tmp_path)


def test_an_aligner_adds_purity_and_monotonicity_columns_and_metrics(tmp_path):
    save_audio(tmp_path / "a.wav", _tone(1.0, 0.5))
    save_audio(tmp_path / "b.wav", _tone(0.5, 0.5))
    items = [ScoreItem(u, t, tmp_path / f"{u}.wav") for u, t in (("a", "one two"), ("b", "x"))]
    seen = []

    def aligner(wavs, texts):  # purity 1 / (seconds), monotonicity the text's words
        seen.append(texts)
        return np.array([16000 / len(w) for w in wavs]), np.array([len(t.split()) for t in texts])

    rows, _ = score_items(items, Evaluators(aligner=aligner), batch_size=2, prosody=False)
    assert seen == [["one two", "x"]]
    assert [(r["attn_purity"], r["attn_monotonicity"]) for r in rows] == [(1.0, 2.0), (2.0, 1.0)]
    by_name = {m.name: m for m in CORPUS_METRICS}
    assert summarise(rows, by_name["attention purity"]).estimate == pytest.approx(1.5)
    assert summarise(rows, by_name["attention monotonicity"]).estimate == pytest.approx(1.5)


class FakeLexiconASR(FakeASR):
    """Raw output by audio length; the lexicon maps 'wrld' to 'world'."""

    lexicon = ["hello", "world"]

    def transcribe_open(self, wavs):
        return super().transcribe(wavs)

    def closed(self, texts):
        return [t.replace("wrld", "world") for t in texts]

    def transcribe(self, wavs):
        return self.closed(self.transcribe_open(wavs))


def test_a_closed_vocabulary_asr_also_gets_its_open_vocabulary_wer(tmp_path):
    save_audio(tmp_path / "a.wav", _tone(1.0, 0.5))
    items = [ScoreItem("a", "hello world", tmp_path / "a.wav")]
    asr = FakeLexiconASR({16000: "hello wrld"})
    (row,), _ = score_items(items, Evaluators(asr), prosody=False)
    assert (row["hyp_text"], row["word_errors"], row["open_word_errors"]) == ("hello world", 0, 1)
    by_name = {m.name: m for m in CORPUS_METRICS}
    assert summarise([row], by_name["WER, open vocabulary (%)"]).estimate == pytest.approx(50.0)
    (plain,), _ = score_items(items, Evaluators(FakeASR({16000: "hello wrld"})), prosody=False)
    assert "open_word_errors" not in plain  # an open-vocabulary ASR: the WER is already that
