"""utils/split_scp.py (Kaldi split_scp semantics) and the utt2spk <-> spk2utt converters."""

from __future__ import annotations

from pathlib import Path

import pytest
from shell_tools import UTILS, run_tool

SPLIT = UTILS / "split_scp.py"


def write_scp(path: Path, speakers: dict[str, int]) -> list[str]:
    """An scp with `count` utterances per speaker, ids starting with the speaker id."""
    lines = [f"{spk}_{i:03d} /wav/{spk}_{i:03d}.wav" for spk, count in speakers.items()
             for i in range(count)]
    path.write_text("".join(line + "\n" for line in lines))
    return lines


def write_utt2spk(path: Path, scp_lines: list[str]) -> None:
    path.write_text("".join(f"{line.split()[0]} {line.split('_')[0]}\n" for line in scp_lines))


def parts(tmp_path: Path, n: int) -> list[Path]:
    return [tmp_path / f"split{n}" / f"part.{k}.scp" for k in range(1, n + 1)]


def test_parts_are_contiguous_and_near_equal(tmp_path):
    lines = write_scp(tmp_path / "wav.scp", {"a": 4, "b": 3, "c": 3})
    outs = parts(tmp_path, 3)
    result = run_tool([SPLIT, tmp_path / "wav.scp", *outs], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    got = [out.read_text().splitlines() for out in outs]
    assert [len(p) for p in got] == [4, 3, 3]          # the first (10 mod 3) parts get one more
    assert sum(got, []) == lines                        # contiguous, in order, nothing lost


def test_utt2spk_mode_keeps_each_speaker_in_one_part(tmp_path):
    lines = write_scp(tmp_path / "wav.scp", {"a": 5, "b": 1, "c": 1, "d": 4, "e": 2})
    write_utt2spk(tmp_path / "utt2spk", lines)
    outs = parts(tmp_path, 3)
    result = run_tool([SPLIT, "--utt2spk", tmp_path / "utt2spk", tmp_path / "wav.scp", *outs],
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    got = [out.read_text().splitlines() for out in outs]
    assert sum(got, []) == lines
    speakers = [{line.split("_")[0] for line in part} for part in got]
    assert all(speakers[i].isdisjoint(speakers[j]) for i in range(3) for j in range(i + 1, 3))
    # 13 lines: cuts at the speaker boundaries nearest 13/3 and 26/3 give 5 / 2 / 6 lines.
    assert [len(p) for p in got] == [5, 2, 6]


@pytest.mark.parametrize("use_utt2spk", [False, True])
def test_fewer_lines_or_speakers_than_parts_is_an_error(tmp_path, use_utt2spk):
    lines = write_scp(tmp_path / "wav.scp", {"a": 2, "b": 1})
    write_utt2spk(tmp_path / "utt2spk", lines)
    n = 3 if use_utt2spk else 4
    opts = ["--utt2spk", tmp_path / "utt2spk"] if use_utt2spk else []
    result = run_tool([SPLIT, *opts, tmp_path / "wav.scp", *parts(tmp_path, n)], cwd=tmp_path)
    assert result.returncode == 1
    what = "2 speakers" if use_utt2spk else "3 lines"
    assert f"{tmp_path / 'wav.scp'}: {what} cannot be split into {n} parts" in result.stderr
    assert not (tmp_path / f"split{n}").exists()


def test_speaker_split_across_the_scp_names_file_line_and_utterance(tmp_path):
    (tmp_path / "wav.scp").write_text("a_1 x\nb_1 y\na_2 z\n")
    (tmp_path / "utt2spk").write_text("a_1 a\na_2 a\nb_1 b\n")
    result = run_tool([SPLIT, "--utt2spk", tmp_path / "utt2spk", tmp_path / "wav.scp",
                       tmp_path / "1.scp", tmp_path / "2.scp"], cwd=tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'wav.scp'}:3: a_2: lines of speaker a are not contiguous" in result.stderr


def test_spk2utt_and_utt2spk_converters_round_trip(tmp_path):
    utt2spk = "a_1 a\na_2 a\nb_1 b\nc_1 c\nc_2 c\nc_3 c\n"
    (tmp_path / "utt2spk").write_text(utt2spk)
    to_spk2utt = run_tool([UTILS / "utt2spk_to_spk2utt.pl", "utt2spk"], cwd=tmp_path)
    assert to_spk2utt.returncode == 0, to_spk2utt.stderr
    assert to_spk2utt.stdout == "a a_1 a_2\nb b_1\nc c_1 c_2 c_3\n"
    (tmp_path / "spk2utt").write_text(to_spk2utt.stdout)
    back = run_tool([UTILS / "spk2utt_to_utt2spk.pl", "spk2utt"], cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    assert back.stdout == utt2spk


@pytest.mark.parametrize("tool, bad", [("utt2spk_to_spk2utt.pl", "a_1 a\nb_1\n"),
                                       ("spk2utt_to_utt2spk.pl", "a a_1\nb\n")])
def test_converters_name_file_and_line_of_a_malformed_line(tmp_path, tool, bad):
    (tmp_path / "in").write_text(bad)
    result = run_tool([UTILS / tool, "in"], cwd=tmp_path)
    assert result.returncode != 0
    assert "in:2: expected" in result.stderr
