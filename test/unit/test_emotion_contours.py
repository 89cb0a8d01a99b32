"""Stage-8 contour figure: sentence choice and the PNG on tiny synthetic audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from local_lib.bin import plot_emotion_contours as contours

# (speaker, emotion, text, F0 of a synthetic tone)
UTTS = {
    "0011_000001": ("0011", "Neutral", "The cat sat.", 120.0),
    "0011_000002": ("0011", "Neutral", "A dog ran.", 120.0),
    "0011_000011": ("0011", "Sad", "the cat sat", 90.0),
    "0011_000021": ("0011", "Happy", "The cat  sat!", 180.0),
    "0012_000001": ("0012", "Neutral", "A dog ran.", 200.0),
}


def write_data(root: Path) -> Path:
    data = root / "data"
    data.mkdir()
    t = np.arange(8000) / 16000.0
    wavs = {}
    for utt, (_, _, _, f0) in UTTS.items():
        path = root / f"{utt}.wav"
        soundfile.write(path, 0.5 * np.sin(2 * np.pi * f0 * t), 16000)
        wavs[utt] = str(path)
    files = {
        "text": {u: v[2] for u, v in UTTS.items()},
        "utt2spk": {u: v[0] for u, v in UTTS.items()},
        "utt2emo": {u: v[1] for u, v in UTTS.items()},
        "wav.scp": wavs,
    }
    for name, table in files.items():
        (data / name).write_text("".join(f"{u} {v}\n" for u, v in sorted(table.items())))
    (data / "spk2utt").write_text(
        "0011 0011_000001 0011_000002 0011_000011 0011_000021\n0012 0012_000001\n"
    )
    return data


def test_choice_is_the_sentence_read_in_most_emotions_matched_after_normalisation(
    tmp_path: Path,
) -> None:
    data = write_data(tmp_path)
    choice = contours.choose_sentence(data)
    assert (choice.speaker, choice.text) == ("0011", "The cat sat.")
    assert choice.utt_by_emotion == {
        "Happy": "0011_000021", "Neutral": "0011_000001", "Sad": "0011_000011"
    }  # fmt: skip
    other = contours.choose_sentence(data, speaker="0012")
    assert other.utt_by_emotion == {"Neutral": "0012_000001"}
    with pytest.raises(ValueError, match="no utterance of speaker 0013"):
        contours.choose_sentence(data, speaker="0013")


def test_tool_writes_a_png_with_a_row_per_emotion(tmp_path: Path) -> None:
    data = write_data(tmp_path)
    out = tmp_path / "report" / "contours.png"
    scp = str(data / "wav.scp")
    contours.main(["--data-dir", str(data), "--system", f"natural={scp}",
                   "--system", f"copy={scp}", "--out", str(out)])  # fmt: skip
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # 3 emotion rows of 1.9 inches at 110 dpi, 3 columns (2 systems + F0) of 3.2 inches.
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (round(3 * 3.2 * 110), round(3 * 1.9 * 110))


def test_a_system_missing_an_utterance_is_named(tmp_path: Path) -> None:
    data = write_data(tmp_path)
    partial = tmp_path / "partial.scp"
    partial.write_text("".join(line for line in (data / "wav.scp").read_text().splitlines(True)
                               if not line.startswith("0011_000011")))  # fmt: skip
    with pytest.raises(ValueError, match=r"system base: 0011_000011 \(Sad\) missing"):
        contours.main(["--data-dir", str(data), "--system", f"base={partial}",
                       "--out", str(tmp_path / "x.png")])  # fmt: skip


def test_a_system_with_several_takes_is_drawn_with_take_0(tmp_path: Path, monkeypatch) -> None:
    """Stage 6's ``--num-samples 3`` wav.scp: <utt>, <utt>#1, <utt>#2; only <utt> is read (the
    other takes point at files that do not exist, so reading one would fail)."""
    data = write_data(tmp_path)
    wavs = dict(line.split() for line in (data / "wav.scp").open())
    takes = tmp_path / "takes.scp"
    takes.write_text("".join(
        f"{utt} {wav}\n{utt}#1 /missing/1.wav\n{utt}#2 /missing/2.wav\n"
        for utt, wav in sorted(wavs.items())
    ))  # fmt: skip
    read: list[str] = []
    load = contours.load_audio
    monkeypatch.setattr(
        contours, "load_audio", lambda path, sr: read.append(path) or load(path, sr)
    )
    out = tmp_path / "takes.png"
    contours.main(["--data-dir", str(data), "--system", f"base={takes}", "--out", str(out)])
    # the chosen sentence's three emotions (Happy, Neutral, Sad rows), take 0 of each
    assert read == [wavs["0011_000021"], wavs["0011_000001"], wavs["0011_000011"]]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
