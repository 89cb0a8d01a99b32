"""Several takes per test utterance: the keys, their grouping and the per-utterance means."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from local_lib.data.audio import save_audio
from local_lib.data.kaldi_dir import write_kv
from local_lib.eval.data_dir_items import data_dir_items
from local_lib.eval.samples import average_takes, take_key, takes_of, takes_of_items
from local_lib.eval.scoring import Evaluators, score_items


def test_take_keys_and_their_grouping() -> None:
    assert [take_key("a", k) for k in range(3)] == ["a", "a#1", "a#2"]
    with pytest.raises(ValueError):
        take_key("a", -1)
    keys = ["b#1", "a", "a#1", "b", "other"]  # order of the scp does not matter; extras ignored
    assert takes_of(["a", "b"], keys, "w.scp") == {"a": ["a", "a#1"], "b": ["b", "b#1"]}
    # an utterance whose own id ends in '#1' is take 0 of itself when 'x' is no utterance
    assert takes_of(["x#1"], ["x#1"], "w.scp") == {"x#1": ["x#1"]}
    assert takes_of_items([("a", 0), ("a#1", 1), ("b", 0)]) == {"a": ["a", "a#1"], "b": ["b"]}


@pytest.mark.parametrize(
    "keys, message",
    [
        (["a", "a#1", "b"], r"w.scp: .*found K in \[1, 2\]"),  # unequal numbers of takes
        (["a", "a#2", "b", "b#2"], r"w.scp: a: takes \[0, 2\]"),  # a gap
        (["a#1", "b", "b#1"], r"w.scp: a: no audio"),  # no take 0
    ],
)
def test_bad_takes_are_named(keys: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        takes_of(["a", "b"], keys, "w.scp")


def test_average_takes_by_hand() -> None:
    rows = [
        {"utt": "a", "ref_text": "x y", "hyp_text": "x", "word_errors": 1, "words": 2,
         "wer": 0.5, "bad_case": 0, "f0_rmse_hz": math.nan, "emo_pred": "Sad"},
        {"utt": "a#1", "ref_text": "x y", "hyp_text": "q r s", "word_errors": 3, "words": 2,
         "wer": 1.5, "bad_case": 1, "f0_rmse_hz": 40.0, "emo_pred": "Happy"},
        {"utt": "b", "ref_text": "z", "hyp_text": "z", "word_errors": 0, "words": 1, "wer": 0.0},
    ]  # fmt: skip
    a, b = average_takes(rows, {"a": ["a", "a#1"], "b": ["b"]})
    assert a == {
        "utt": "a", "ref_text": "x y", "hyp_text": "x", "emo_pred": "Sad", "word_errors": 2.0,
        "words": 2.0, "wer": 1.0, "bad_case": 0.5, "f0_rmse_hz": 40.0,
    }  # fmt: skip
    assert b is rows[2]
    both_nan = [{"utt": "c", "f0_rmse_hz": math.nan}, {"utt": "c#1", "f0_rmse_hz": math.nan}]
    assert math.isnan(average_takes(both_nan, {"c": ["c", "c#1"]})[0]["f0_rmse_hz"])


class _LengthASR:
    """Transcribes a wav as 'x' repeated once per 0.5 s."""

    def transcribe(self, wavs: list[np.ndarray]) -> list[str]:
        return [" ".join(["x"] * int(len(w) / 8000)) for w in wavs]


class _LevelEmbedder:
    def embed(self, wavs: list[np.ndarray]) -> np.ndarray:
        return np.array([[float(np.abs(w).mean()), 1.0] for w in wavs])


def test_takes_are_scored_and_only_take_0_enters_verification(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    utts = {"s1_a": "s1", "s1_b": "s1", "s2_a": "s2", "s2_b": "s2"}
    write_kv(data / "text", {u: "x x" for u in utts})
    write_kv(data / "utt2spk", utts)
    scp = {}
    for i, utt in enumerate(utts):
        for k, seconds in enumerate((1.0, 1.5)):  # take 0 says 'x x', take 1 'x x x'
            path = tmp_path / f"{utt}_{k}.wav"
            save_audio(path, np.full(int(16000 * seconds), 0.1 * (i + 1), np.float32))
            scp[take_key(utt, k)] = str(path)
    write_kv(tmp_path / "wav.scp", scp)
    items = data_dir_items(data, wav_scp=tmp_path / "wav.scp", reference="none")
    assert [(it.utt, it.take) for it in items][:2] == [("s1_a", 0), ("s1_a#1", 1)]
    rows, ver = score_items(items, Evaluators(_LengthASR(), _LevelEmbedder()), prosody=False)
    assert [r["word_errors"] for r in rows] == [0, 1] * 4
    assert ver is not None and (ver.n_same, ver.n_diff) == (2, 4)  # 4 take-0 items, 2 speakers
    means = average_takes(rows, takes_of_items((it.utt, it.take) for it in items))
    assert [(r["utt"], r["word_errors"], r["wer"]) for r in means] == [
        (u, 0.5, 0.25) for u in utts
    ]
