"""utils/subset_data_dir.sh: a valid smaller data dir, every per-utterance file filtered."""

from __future__ import annotations

from local_lib.data.kaldi_dir import read_kv, validate_data_dir

from fake_corpora import make_data_dir  # noqa: E402
from recipe_dir import make_recipe_dir, run_in  # noqa: E402


def test_subset_by_list_filters_every_file_and_stays_valid(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    data = make_data_dir(recipe / "data/test", tmp_path / "wavs", count=6)
    utts = list(read_kv(data / "utt2spk"))
    (data / "utt2emo").write_text("".join(f"{u} Sad\n" for u in utts))
    (recipe / "keep").write_text(f"{utts[4]}\n{utts[1]} anything after the id\n")
    result = run_in(
        recipe, "utils/subset_data_dir.sh", "--utt-list", "keep", "data/test", "data/test_small"
    )
    assert result.returncode == 0, result.stderr
    small = recipe / "data/test_small"
    assert validate_data_dir(small) == []
    for name in ("wav.scp", "text", "utt2spk", "utt2emo"):
        assert list(read_kv(small / name)) == sorted([utts[1], utts[4]]), name
    assert read_kv(small / "text")[utts[1]] == read_kv(data / "text")[utts[1]]
    assert "2 of 6 utterances" in result.stderr


def test_first_n_per_speaker(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    data = make_data_dir(recipe / "data/test", tmp_path / "wavs", count=6)
    result = run_in(recipe, "utils/subset_data_dir.sh", "--per-spk", "1", "data/test", "data/one")
    assert result.returncode == 0, result.stderr
    spk2utt = read_kv(recipe / "data/one/spk2utt")
    assert spk2utt == {spk: utts.split()[0] for spk, utts in read_kv(data / "spk2utt").items()}


def test_an_unknown_utterance_is_named_with_its_line(tmp_path):
    recipe = make_recipe_dir(tmp_path / "recipe")
    make_data_dir(recipe / "data/test", tmp_path / "wavs", count=2)
    (recipe / "keep").write_text("nobody_0001\n")
    result = run_in(recipe, "utils/subset_data_dir.sh", "--utt-list", "keep", "data/test", "data/x")
    assert result.returncode == 1
    assert "keep:1: nobody_0001: not in the source data dir" in result.stderr
    assert not (recipe / "data/x").exists()
