"""utils/fix_data_dir.sh: filter to common utterances, sort, back up, report why."""

from __future__ import annotations

from pathlib import Path

from local_lib.data.kaldi_dir import read_kv, validate_data_dir

from fake_corpora import make_data_dir, write_tone  # noqa: E402
from recipe_dir import make_recipe_dir, run_in  # noqa: E402


def test_fix_makes_a_broken_dir_valid_and_keeps_the_originals(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    data = make_data_dir(recipe / "data/train", tmp_path / "wavs", count=6)
    utts = list(read_kv(data / "utt2spk"))
    text = (data / "text").read_text().splitlines()
    # unsorted, one utterance without a transcript line, one with an empty transcript
    broken_text = [text[2], text[0], utts[3], *text[4:]]
    (data / "text").write_text("\n".join(broken_text) + "\n")
    # a duplicate line and an utterance only in wav.scp
    wav_lines = (data / "wav.scp").read_text().splitlines()
    (data / "wav.scp").write_text("\n".join([*wav_lines, wav_lines[0], "zz-extra /x.wav"]) + "\n")
    (data / "utt2emo").write_text("".join(f"{u} Sad\n" for u in utts if u != utts[5]))
    originals = {p.name: p.read_bytes() for p in data.iterdir()}
    assert validate_data_dir(data) != []

    result = run_in(recipe, "utils/fix_data_dir.sh", "data/train")
    assert result.returncode == 0, result.stderr
    assert validate_data_dir(data) == []
    assert list(read_kv(data / "text")) == [utts[0], utts[2], utts[4]]
    assert read_kv(data / "spk2utt") == {"spk0": f"{utts[0]} {utts[2]}", "spk1": utts[4]}
    backup = {p.name: p.read_bytes() for p in (data / ".backup").iterdir() if p.name != "dropped"}
    assert backup == originals
    assert f"dropped {utts[1]}: missing from (or empty in) text" in result.stderr
    assert f"dropped {utts[3]}: missing from (or empty in) text" in result.stderr
    assert f"dropped {utts[5]}: missing from (or empty in) utt2emo" in result.stderr
    assert "kept 3 of 7 utterances, dropped 4: 2 missing from (or empty in) text; " \
           "1 missing from (or empty in) utt2emo; 1 wav file does not exist: /x.wav" \
        in result.stderr  # fmt: skip


def test_fix_refuses_a_dir_without_required_files(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    data = make_data_dir(recipe / "data/train", tmp_path / "wavs", count=2)
    (data / "utt2spk").unlink()
    result = run_in(recipe, "utils/fix_data_dir.sh", "data/train")
    assert result.returncode == 1 and "cannot fix without utt2spk" in result.stderr
    assert not (data / ".backup").exists()


def test_fix_drops_missing_unreadable_and_too_short_audio_and_lists_it(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    data = make_data_dir(recipe / "data/train", tmp_path / "wavs", count=6)
    wavs = read_kv(data / "wav.scp")
    utts = list(wavs)
    Path(wavs[utts[0]]).unlink()
    Path(wavs[utts[1]]).write_text("not audio")
    write_tone(Path(wavs[utts[2]]), seconds=0.01)
    result = run_in(recipe, "utils/fix_data_dir.sh", "data/train")
    assert result.returncode == 0, result.stderr
    assert list(read_kv(data / "wav.scp")) == utts[3:]
    assert validate_data_dir(data) == []
    dropped = dict(line.split("\t") for line in (data / ".backup/dropped").read_text().splitlines())
    assert dropped[utts[0]] == f"wav file does not exist: {wavs[utts[0]]}"
    assert dropped[utts[1]].startswith(f"cannot read audio {wavs[utts[1]]}")
    assert dropped[utts[2]].startswith(f"audio {wavs[utts[2]]} has 160 samples")
    assert "every dropped utterance in data/train/.backup/dropped" in result.stderr


def test_fix_without_audio_checks_still_drops_a_missing_wav(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    data = make_data_dir(recipe / "data/train", tmp_path / "wavs", count=4)
    wavs = read_kv(data / "wav.scp")
    first = next(iter(wavs))
    Path(wavs[first]).unlink()
    Path(wavs[list(wavs)[1]]).write_text("not audio")  # kept: audio is not opened
    result = run_in(recipe, "utils/fix_data_dir.sh", "--no-audio", "data/train")
    assert result.returncode == 0, result.stderr
    assert list(read_kv(data / "wav.scp")) == list(wavs)[1:]
