"""All-or-nothing, build-once corpus directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_lib.data.mini.build import DONE_MARKER, MiniCorpusError, build_once

SIGNATURE = {"corpus": "toy", "seed": 0}


def write_toy(tmp: Path) -> None:
    (tmp / "a.txt").write_text("hello\n")


def test_builds_then_rerun_does_nothing(tmp_path):
    out = tmp_path / "corpus"
    assert build_once(out, SIGNATURE, write_toy) is True
    assert (out / "a.txt").read_text() == "hello\n" and (out / DONE_MARKER).is_file()
    assert not out.with_name("corpus.tmp").exists()
    before = (out / "a.txt").stat().st_mtime_ns

    def must_not_run(tmp: Path) -> None:
        raise AssertionError("a finished build was redone")

    assert build_once(out, SIGNATURE, must_not_run) is False
    assert (out / "a.txt").stat().st_mtime_ns == before


def test_interrupted_build_leaves_nothing_trusted_and_is_redone(tmp_path):
    out = tmp_path / "corpus"

    def crash(tmp: Path) -> None:
        (tmp / "half.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_once(out, SIGNATURE, crash)
    assert not out.exists()
    assert build_once(out, SIGNATURE, write_toy) is True
    assert sorted(p.name for p in out.iterdir()) == sorted([DONE_MARKER, "a.txt"])


def test_other_build_or_foreign_directory_is_refused(tmp_path):
    out = tmp_path / "corpus"
    build_once(out, SIGNATURE, write_toy)
    with pytest.raises(MiniCorpusError, match="different build"):
        build_once(out, {"corpus": "toy", "seed": 1}, write_toy)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    with pytest.raises(MiniCorpusError, match="no done marker"):
        build_once(foreign, SIGNATURE, write_toy)
