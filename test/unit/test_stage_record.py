"""Done-markers that record their inputs (local_lib/bin/stage_record.py): a stale output is
redone, never trusted, and checkpoints of a run with other inputs are never resumed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local_lib.bin import stage_record
from local_lib.bin.stage_record import main


@pytest.fixture
def recipe(tmp_path: Path, monkeypatch) -> Path:
    """A recipe dir with a config, a data dir and a stage output dir; the cwd of each test."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/model.yaml").write_text("lr: 1.0e-3\nnum_steps: 300\n")
    (tmp_path / "data/train").mkdir(parents=True)
    (tmp_path / "data/train/wav.scp").write_text("a /a.wav\nb /b.wav\nc /c.wav\n")
    (tmp_path / "exp/model").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


ARGS = ["--config", "conf/model.yaml", "--train-dir", "data/train", "--out-dir", "exp/model"]
MARKER = "exp/model/.done"


def done(capsys, *args: str) -> tuple[bool, str]:
    status = main(["check", MARKER, "--output", "exp/model/model.pt", "--", *args])
    return status == 0, capsys.readouterr().out.strip()


def make(*args: str) -> None:
    assert main(["begin", MARKER, "--resume-dir", "exp/model/checkpoints", "--", *args]) == 0
    Path("exp/model/model.pt").write_bytes(b"weights")
    assert main(["finish", MARKER]) == 0


def test_an_output_made_from_the_same_inputs_is_done(recipe, capsys):
    assert done(capsys, *ARGS) == (False, "")  # no marker yet: not done, nothing to explain
    make(*ARGS)
    assert done(capsys, *ARGS) == (True, "")
    Path("exp/model/log").mkdir()
    Path("exp/model/log/train.log").write_text("the output dir is not an input\n")
    assert done(capsys, *ARGS) == (True, "")


def test_a_shrunk_data_dir_makes_the_output_stale(recipe, capsys):
    make(*ARGS)
    Path("data/train/wav.scp").write_text("a /a.wav\nb /b.wav\n")
    assert done(capsys, *ARGS) == (False, f"{MARKER} is stale: data/train changed")


def test_a_changed_config_or_option_makes_the_output_stale(recipe, capsys):
    make(*ARGS)
    Path("conf/model.yaml").write_text("lr: 2.0e-3\nnum_steps: 300\n")
    assert done(capsys, *ARGS) == (False, f"{MARKER} is stale: conf/model.yaml changed")
    make(*ARGS)
    ok, why = done(capsys, *ARGS, "--seed", "1")
    assert not ok and why.startswith(f"{MARKER} is stale: the command line changed (was: --config")


def test_a_missing_output_is_not_trusted(recipe, capsys):
    make(*ARGS)
    Path("exp/model/model.pt").unlink()
    assert done(capsys, *ARGS) == (
        False, f"{MARKER} is stale: its output exp/model/model.pt is missing"
    )  # fmt: skip


def test_a_marker_of_an_older_version_is_stale(recipe, capsys):
    Path(MARKER).touch()  # what `touch .done` used to write
    Path("exp/model/model.pt").write_bytes(b"weights")
    ok, why = done(capsys, *ARGS)
    assert not ok and "records no inputs" in why


def test_name_equals_file_counts_the_file_but_not_a_directory(recipe, capsys):
    Path("exp/reward").mkdir()
    Path("exp/reward/model.pt").write_bytes(b"reward v1")
    args = [*ARGS, "--reward-model", "reward=exp/reward/model.pt", "ROOT=/"]  # "/": a corpus root
    make(*args)
    assert done(capsys, *args) == (True, "")
    Path("exp/reward/model.pt").write_bytes(b"reward v2")
    assert done(capsys, *args) == (False, f"{MARKER} is stale: exp/reward/model.pt changed")


def test_checkpoints_of_a_run_with_another_config_are_not_resumed(recipe, capsys):
    """Issue 19 item 1: a run killed after a checkpoint, then the config edited, is refused."""
    assert main(["begin", MARKER, "--resume-dir", "exp/model/checkpoints", "--", *ARGS]) == 0
    Path("exp/model/checkpoints").mkdir()
    Path("exp/model/checkpoints/checkpoint_00000150.pt").write_bytes(b"step 150")
    # killed here: no finish. The same inputs resume ...
    assert main(["begin", MARKER, "--resume-dir", "exp/model/checkpoints", "--", *ARGS]) == 0
    Path("conf/model.yaml").write_text("lr: 1.0e-4\nnum_steps: 400\n")
    # ... a changed config does not.
    assert main(["begin", MARKER, "--resume-dir", "exp/model/checkpoints", "--", *ARGS]) == 2
    err = capsys.readouterr().err
    assert "exp/model/checkpoints holds checkpoints of a run made from other inputs " \
        "(conf/model.yaml changed); resuming would mix the two" in err  # fmt: skip
    assert "remove exp/model/checkpoints to start over" in err
    assert Path("exp/model/checkpoints/checkpoint_00000150.pt").exists()


def test_a_finished_run_with_another_config_is_refused_not_resumed(recipe, capsys):
    make(*ARGS)
    Path("exp/model/checkpoints").mkdir()
    Path("exp/model/checkpoints/checkpoint_00000300.pt").write_bytes(b"step 300")
    Path("conf/model.yaml").write_text("lr: 1.0e-3\nnum_steps: 600\n")
    assert main(["begin", MARKER, "--resume-dir", "exp/model/checkpoints", "--", *ARGS]) == 2
    assert Path(MARKER).exists()  # refused: nothing changed on disk


def test_begin_removes_the_old_marker_and_finish_needs_begin(recipe, capsys):
    make(*ARGS)
    assert main(["begin", MARKER, "--", *ARGS, "--seed", "2"]) == 0
    assert not Path(MARKER).exists() and Path(MARKER + ".inputs").exists()
    os.remove(MARKER + ".inputs")
    assert main(["finish", MARKER]) == 1
    assert "'begin' was not run for exp/model/.done" in capsys.readouterr().err


def test_a_large_input_counts_by_size_and_time(recipe, capsys, monkeypatch):
    monkeypatch.setattr(stage_record, "CONTENT_LIMIT", 8)
    big = Path("exp/feats.ark")
    big.write_bytes(b"0123456789")
    make(*ARGS, str(big))
    big.write_bytes(b"9876543210")  # same size, new content: caught by its modification time
    os.utime(big, ns=(1, 1))
    assert done(capsys, *ARGS, str(big)) == (False, f"{MARKER} is stale: {big} changed")
