"""utils/combine_data.sh: one valid data dir from several, and the errors that name the cause."""

from __future__ import annotations

from local_lib.data.kaldi_dir import read_kv, validate_data_dir

from fake_corpora import make_data_dir  # noqa: E402
from recipe_dir import make_recipe_dir, run_in  # noqa: E402


def renamed_copy(src, dest, prefix: str):
    """`src` with every utterance and speaker id prefixed, so its ids are new (same wavs)."""
    dest.mkdir(parents=True)
    for name in ("wav.scp", "text", "utt2spk", "spk2utt"):
        lines = (src / name).read_text().splitlines()
        if name == "utt2spk":
            lines = [f"{prefix}{u} {prefix}{s}" for u, s in (line.split() for line in lines)]
        elif name == "spk2utt":
            lines = [" ".join(prefix + f for f in line.split()) for line in lines]
        else:
            lines = [prefix + line for line in lines]
        (dest / name).write_text("".join(line + "\n" for line in lines))
    return dest


def test_two_dirs_combine_into_a_valid_dir_with_their_shared_extras(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    a = make_data_dir(recipe / "data/a", tmp_path / "wavs", count=4)
    b = renamed_copy(a, recipe / "data/b", "x")
    for d in (a, b):
        utts = read_kv(d / "utt2spk")
        (d / "utt2lang").write_text("".join(f"{u} en\n" for u in utts))
    (a / "utt2emo").write_text("".join(f"{u} Sad\n" for u in read_kv(a / "utt2spk")))
    result = run_in(recipe, "utils/combine_data.sh", "data/ab", "data/a", "data/b")
    assert result.returncode == 0, result.stderr
    ab = recipe / "data/ab"
    assert validate_data_dir(ab) == []
    assert read_kv(ab / "text") == {**read_kv(a / "text"), **read_kv(b / "text")}
    assert len(read_kv(ab / "utt2lang")) == 8
    assert read_kv(ab / "spk2utt").keys() == {"spk0", "spk1", "xspk0", "xspk1"}
    assert not (ab / "utt2emo").exists()
    assert "utt2emo is left out: not in data/b" in result.stderr
    assert "data/ab: 8 utterances from data/a data/b" in result.stderr


def test_a_rerun_removes_an_extra_file_the_sources_no_longer_have(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    a = make_data_dir(recipe / "data/a", tmp_path / "wavs", count=2)
    renamed_copy(a, recipe / "data/b", "x")
    (recipe / "data/ab").mkdir()
    (recipe / "data/ab/utt2emo").write_text("old Sad\n")
    result = run_in(recipe, "utils/combine_data.sh", "data/ab", "data/a", "data/b")
    assert result.returncode == 0, result.stderr
    assert not (recipe / "data/ab/utt2emo").exists()
    assert validate_data_dir(recipe / "data/ab") == []


def test_a_duplicate_utterance_id_is_named_with_both_dirs(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    make_data_dir(recipe / "data/a", tmp_path / "wavs", count=3)
    make_data_dir(recipe / "data/b", tmp_path / "wavs_b", count=1)
    result = run_in(recipe, "utils/combine_data.sh", "data/ab", "data/a", "data/b")
    assert result.returncode == 1
    assert "spk0-utt000: utterance id in both data/a and data/b" in result.stderr
    assert not (recipe / "data/ab").exists()


def test_bad_arguments_and_sources_are_refused(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    a = make_data_dir(recipe / "data/a", tmp_path / "wavs", count=2)
    renamed_copy(a, recipe / "data/b", "x")
    one = run_in(recipe, "utils/combine_data.sh", "data/ab", "data/a")
    assert one.returncode == 2 and "give at least two source dirs" in one.stderr
    into_source = run_in(recipe, "utils/combine_data.sh", "data/a", "data/a", "data/b")
    assert into_source.returncode == 1
    assert "data/a: destination is one of the sources" in into_source.stderr
    missing = run_in(recipe, "utils/combine_data.sh", "data/ab", "data/a", "data/none")
    assert missing.returncode == 1
    assert "data/none: missing required file(s): wav.scp, text, utt2spk, spk2utt" in missing.stderr
    (a / "segments").write_text(f"{next(iter(read_kv(a / 'utt2spk')))} rec 0.0 0.2\n")
    segmented = run_in(recipe, "utils/combine_data.sh", "data/ab", "data/a", "data/b")
    assert segmented.returncode == 1
    assert "data/a: has segments; combine_data reads dirs without them" in segmented.stderr
